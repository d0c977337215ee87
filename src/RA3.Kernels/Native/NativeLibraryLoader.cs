using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace RA3.Kernels.Native;

/// <summary>
/// Finds <c>ra3_native</c>: the file named by the <c>RA3_NATIVE_LIB</c> environment variable when
/// set (a CUDA build on a GPU machine), else the copy next to the assemblies that the build put
/// there, else the runtime's search: an application's native assets (the RA3.Native.linux-x64
/// package's runtimes/linux-x64/native), then the system's search path (for the C API, compiled
/// by NativeAOT, the folder of libra3_engine itself, its RUNPATH).
/// </summary>
public static partial class NativeLibraryLoader
{
    /// <summary>The library name used in the P/Invoke declarations.</summary>
    public const string LibraryName = "ra3_native";

    /// <summary>The environment variable that overrides the library's path.</summary>
    public const string PathVariable = "RA3_NATIVE_LIB";

    private static string? loadedFrom;

    /// <summary>Full path of the loaded library, or null before the first call.</summary>
    public static string? LoadedFrom => loadedFrom;

    /// <summary>Where the loader looks first.</summary>
    public static string CandidatePath =>
        Environment.GetEnvironmentVariable(PathVariable) is { Length: > 0 } p ? Path.GetFullPath(p) : Path.Combine(AppContext.BaseDirectory, "libra3_native.so");

#pragma warning disable CA2255 // the resolver must be installed before the first P/Invoke of this assembly
    [ModuleInitializer]
    internal static void Install() => NativeLibrary.SetDllImportResolver(typeof(NativeLibraryLoader).Assembly, Resolve);
#pragma warning restore CA2255

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != LibraryName)
        {
            return IntPtr.Zero;
        }

        WaitPassivelyBetweenParallelRegions();
        string candidate = CandidatePath;
        if (File.Exists(candidate))
        {
            loadedFrom = candidate;
            return NativeLibrary.Load(candidate);
        }

        if (Environment.GetEnvironmentVariable(PathVariable) is { Length: > 0 })
        {
            throw new DllNotFoundException($"{PathVariable} points to '{candidate}', which does not exist");
        }

        if (NativeLibrary.TryLoad(name, assembly, searchPath, out IntPtr handle))
        {
            loadedFrom = name + " (the application's native assets or the system search path)";
            return handle;
        }

        throw new DllNotFoundException($"ra3_native was not found at '{candidate}' nor on the search path; reference the RA3.Native.linux-x64 package, build it with CMake (dotnet build does) or set {PathVariable}");
    }

    /// <summary>
    /// Sets OMP_WAIT_POLICY=passive in the process environment unless it is already set, before
    /// ra3_native loads its OpenMP runtime (which reads it once, at load). By default libgomp's
    /// threads spin between parallel regions, and in this process the managed kernels run between
    /// them on the same cores: on a 2-core machine the spinning was 15 % of a native training
    /// step's samples, and the step ran 15–20 % faster with passive waiting (RESULTS.md).
    /// </summary>
    private static void WaitPassivelyBetweenParallelRegions()
    {
        if (OperatingSystem.IsLinux())
        {
            _ = SetEnvironmentVariable("OMP_WAIT_POLICY", "passive", overwrite: 0);
        }
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnvironmentVariable(string name, string value, int overwrite);
}
