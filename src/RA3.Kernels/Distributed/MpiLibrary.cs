using System.Runtime.InteropServices;

namespace RA3.Kernels.Distributed;

/// <summary>
/// Open MPI's C library, bound at run time (<c>libmpi.so.40</c>, the soname of Open MPI 3 and 4,
/// as Debian's <c>libopenmpi3</c> installs it): the functions a data-parallel run calls, as
/// unmanaged function pointers, and the predefined handles. MPI fixes an API, not an ABI; in
/// Open MPI a handle (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM …) is the address of an exported
/// object (<c>ompi_mpi_comm_world</c> …), which is how this binding finds them — and how it tells
/// Open MPI from an MPI whose handles are integers (MPICH, MS-MPI), which it refuses by name.
/// Loaded only when mpirun started the process, so a single process needs no MPI installed.
/// </summary>
internal sealed unsafe class MpiLibrary
{
    /// <summary>MPI_THREAD_SERIALIZED: MPI is called by one thread at a time (the trainer's).</summary>
    public const int ThreadSerialized = 2;

    /// <summary>MPI_IN_PLACE in Open MPI's mpi.h.</summary>
    public static readonly IntPtr InPlace = 1;

    private const int MaxString = 256;  // MPI_MAX_ERROR_STRING and MPI_MAX_LIBRARY_VERSION_STRING in Open MPI

    private static readonly string[] Names = ["libmpi.so.40", "libmpi.so"];

    private MpiLibrary(IntPtr library, string path)
    {
        Path = path;
        IntPtr F(string name) => NativeLibrary.TryGetExport(library, name, out IntPtr f) ? f : throw new InvalidOperationException($"{path} has no function {name}: not an MPI-3 library");
        if (!NativeLibrary.TryGetExport(library, "ompi_mpi_comm_world", out IntPtr world))
        {
            throw new InvalidOperationException($"{path} is not Open MPI (it exports no ompi_mpi_comm_world): ra3 binds Open MPI's handles; launch it with Open MPI's mpirun (Debian: openmpi-bin, tools/install-mpi.sh)");
        }

        CommWorld = world;
        Float = F("ompi_mpi_float");
        Double = F("ompi_mpi_double");
        Byte = F("ompi_mpi_byte");
        Int = F("ompi_mpi_int");
        Sum = F("ompi_mpi_op_sum");
        ErrorsReturn = F("ompi_mpi_errors_return");
        InitThread = (delegate* unmanaged<int*, byte***, int, int*, int>)F("MPI_Init_thread");
        Finalize = (delegate* unmanaged<int>)F("MPI_Finalize");
        AbortJob = (delegate* unmanaged<IntPtr, int, int>)F("MPI_Abort");
        CommRank = (delegate* unmanaged<IntPtr, int*, int>)F("MPI_Comm_rank");
        CommSize = (delegate* unmanaged<IntPtr, int*, int>)F("MPI_Comm_size");
        SetErrorHandler = (delegate* unmanaged<IntPtr, IntPtr, int>)F("MPI_Comm_set_errhandler");
        ErrorString = (delegate* unmanaged<int, byte*, int*, int>)F("MPI_Error_string");
        LibraryVersion = (delegate* unmanaged<byte*, int*, int>)F("MPI_Get_library_version");
        Iallreduce = (delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, IntPtr*, int>)F("MPI_Iallreduce");
        Ibcast = (delegate* unmanaged<void*, int, IntPtr, int, IntPtr, IntPtr*, int>)F("MPI_Ibcast");
        Iallgather = (delegate* unmanaged<void*, int, IntPtr, void*, int, IntPtr, IntPtr, IntPtr*, int>)F("MPI_Iallgather");
        Iallgatherv = (delegate* unmanaged<void*, int, IntPtr, void*, int*, int*, IntPtr, IntPtr, IntPtr*, int>)F("MPI_Iallgatherv");
        Igatherv = (delegate* unmanaged<void*, int, IntPtr, void*, int*, int*, IntPtr, int, IntPtr, IntPtr*, int>)F("MPI_Igatherv");
        Ibarrier = (delegate* unmanaged<IntPtr, IntPtr*, int>)F("MPI_Ibarrier");
        Test = (delegate* unmanaged<IntPtr*, int*, void*, int>)F("MPI_Test");
    }

    /// <summary>The file loaded.</summary>
    public string Path { get; }

    public IntPtr CommWorld { get; }

    public IntPtr Float { get; }

    public IntPtr Double { get; }

    public IntPtr Byte { get; }

    public IntPtr Int { get; }

    public IntPtr Sum { get; }

    public IntPtr ErrorsReturn { get; }

    public delegate* unmanaged<int*, byte***, int, int*, int> InitThread { get; }

    public delegate* unmanaged<int> Finalize { get; }

    public delegate* unmanaged<IntPtr, int, int> AbortJob { get; }

    public delegate* unmanaged<IntPtr, int*, int> CommRank { get; }

    public delegate* unmanaged<IntPtr, int*, int> CommSize { get; }

    public delegate* unmanaged<IntPtr, IntPtr, int> SetErrorHandler { get; }

    public delegate* unmanaged<int, byte*, int*, int> ErrorString { get; }

    public delegate* unmanaged<byte*, int*, int> LibraryVersion { get; }

    public delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, IntPtr*, int> Iallreduce { get; }

    public delegate* unmanaged<void*, int, IntPtr, int, IntPtr, IntPtr*, int> Ibcast { get; }

    public delegate* unmanaged<void*, int, IntPtr, void*, int, IntPtr, IntPtr, IntPtr*, int> Iallgather { get; }

    public delegate* unmanaged<void*, int, IntPtr, void*, int*, int*, IntPtr, IntPtr, IntPtr*, int> Iallgatherv { get; }

    public delegate* unmanaged<void*, int, IntPtr, void*, int*, int*, IntPtr, int, IntPtr, IntPtr*, int> Igatherv { get; }

    public delegate* unmanaged<IntPtr, IntPtr*, int> Ibarrier { get; }

    public delegate* unmanaged<IntPtr*, int*, void*, int> Test { get; }

    /// <summary>Loads Open MPI's library, or throws one line saying what to install.</summary>
    public static MpiLibrary Load()
    {
        foreach (string name in Names)
        {
            if (NativeLibrary.TryLoad(name, out IntPtr handle))
            {
                return new MpiLibrary(handle, name);
            }
        }

        throw new InvalidOperationException($"mpirun started this process but Open MPI's library ({string.Join(" or ", Names)}) was not found: install Open MPI (Debian: openmpi-bin and libopenmpi-dev; tools/install-mpi.sh)");
    }

    /// <summary>The library's text for an MPI error code.</summary>
    public string Describe(int code)
    {
        byte* text = stackalloc byte[MaxString];
        int length = 0;
        return ErrorString(code, text, &length) == 0 ? Marshal.PtrToStringUTF8((IntPtr)text, length) : $"MPI error {code}";
    }

    /// <summary>The library's version line (first line of MPI_Get_library_version).</summary>
    public string Version()
    {
        byte* text = stackalloc byte[MaxString * 32];
        int length = 0;
        string full = LibraryVersion(text, &length) == 0 ? Marshal.PtrToStringUTF8((IntPtr)text, length) : "an MPI library";
        return full.Split('\n', ',')[0].Trim();
    }
}
