using System.Runtime.Versioning;

// The tests drive ra3, which runs on Linux only (see src/RA3.Train/AssemblyInfo.cs).
[assembly: SupportedOSPlatform("linux")]
