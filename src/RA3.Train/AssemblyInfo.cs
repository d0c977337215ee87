using System.Runtime.Versioning;

// ra3 runs on Linux: the native library is a .so and the sandbox is bubblewrap, setpriv and prlimit.
[assembly: SupportedOSPlatform("linux")]
