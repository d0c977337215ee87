// The sandbox runs on Linux only (bubblewrap, /proc, setpriv): see src/RA3.Train/AssemblyInfo.cs.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
