using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace RA3.CApi;

/// <summary>
/// What every export does at the C boundary (ra3_engine.h's conventions, as ra3.h's): clears the
/// thread's last error, runs the body, and turns any exception into a status code and a one-line
/// message naming the function, so that no exception crosses into the host.
/// </summary>
internal static unsafe class Boundary
{
    [ThreadStatic]
    private static byte* lastError;

    private static readonly byte* Empty = Utf8("");

    /// <summary>The thread's last message, "" after a call that succeeded.</summary>
    public static byte* LastError => lastError is null ? Empty : lastError;

    /// <summary>Runs <paramref name="body"/> for the export <paramref name="function"/>.</summary>
    public static Status Run(string function, Action body)
    {
        SetLastError(null);
        try
        {
            body();
            return Status.Ok;
        }
        catch (Exception e)
        {
            var status = StatusOf(e);
            SetLastError($"{function}: {(status == Status.Internal ? e.GetType().Name + ": " : "")}{e.Message}");
            return status;
        }
    }

    /// <summary>A NUL-terminated UTF-8 copy on the native heap, owned by the caller (static strings, the last error).</summary>
    public static byte* Utf8(string text)
    {
        int n = Encoding.UTF8.GetByteCount(text);
        byte* p = (byte*)NativeMemory.Alloc((nuint)n + 1);
        Encoding.UTF8.GetBytes(text, new Span<byte>(p, n));
        p[n] = 0;
        return p;
    }

    /// <summary>The string a host passed; <see cref="ArgumentException"/> naming the parameter when it is NULL.</summary>
    public static string String(byte* p, string name) =>
        p is null ? throw new ArgumentException($"{name} is NULL") : Marshal.PtrToStringUTF8((IntPtr)p)!;

    /// <summary>The pointer itself; <see cref="ArgumentException"/> naming the parameter when it is NULL.</summary>
    public static T* NotNull<T>(T* p, string name)
        where T : unmanaged =>
        p is null ? throw new ArgumentException($"{name} is NULL") : p;

    /// <summary>Which status an exception reports: bad input, a file, memory, what this machine lacks, or a bug.</summary>
    private static Status StatusOf(Exception e) => e switch
    {
        ArgumentException => Status.InvalidArgument,
        IOException or InvalidDataException or JsonException or UnauthorizedAccessException => Status.Io,
        OutOfMemoryException or InsufficientExecutionStackException => Status.OutOfMemory,
        DllNotFoundException or EntryPointNotFoundException or NotSupportedException => Status.Unsupported,
        _ => Status.Internal,
    };

    private static void SetLastError(string? message)
    {
        NativeMemory.Free(lastError);
        lastError = message is null ? null : Utf8(message);
    }
}

/// <summary>ra3_engine_status: what every export returns.</summary>
public enum Status
{
    /// <summary>RA3_ENGINE_OK.</summary>
    Ok = 0,

    /// <summary>RA3_ENGINE_ERR_INVALID_ARGUMENT.</summary>
    InvalidArgument = 1,

    /// <summary>RA3_ENGINE_ERR_OUT_OF_MEMORY.</summary>
    OutOfMemory = 2,

    /// <summary>RA3_ENGINE_ERR_UNSUPPORTED.</summary>
    Unsupported = 3,

    /// <summary>RA3_ENGINE_ERR_INTERNAL.</summary>
    Internal = 4,

    /// <summary>RA3_ENGINE_ERR_IO.</summary>
    Io = 5,
}
