namespace RA3.Kernels.Native;

/// <summary>The result of every <c>ra3_native</c> call: <c>ra3_status</c> of <c>native/include/ra3.h</c>, value for value.</summary>
internal enum NativeStatus
{
    /// <summary>RA3_OK.</summary>
    Ok = 0,

    /// <summary>RA3_ERR_INVALID_ARGUMENT: a null pointer, a negative or inconsistent size.</summary>
    InvalidArgument = 1,

    /// <summary>RA3_ERR_OUT_OF_MEMORY: a scratch allocation failed.</summary>
    OutOfMemory = 2,

    /// <summary>RA3_ERR_UNSUPPORTED: the build lacks the feature (e.g. CUDA).</summary>
    Unsupported = 3,

    /// <summary>RA3_ERR_INTERNAL: an unexpected C++ exception, caught at the boundary.</summary>
    Internal = 4,
}
