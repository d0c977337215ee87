using ILGPU;
using ILGPU.Runtime;
using RA3.Kernels.Tensors;

namespace RA3.Kernels.Ilgpu;

/// <summary>Zeroed accelerator memory (device memory on CUDA, host memory on ILGPU's CPU accelerator).</summary>
public sealed class IlgpuStorage : TensorStorage
{
    /// <summary>Allocates <paramref name="byteLength"/> zeroed bytes on <paramref name="accelerator"/>.</summary>
    public IlgpuStorage(Accelerator accelerator, long byteLength)
    {
        Buffer = accelerator.Allocate1D<byte>(Math.Max(byteLength, 4));
        Buffer.MemSetToZero();
        ByteLength = byteLength;
    }

    /// <inheritdoc/>
    public override long ByteLength { get; }

    /// <summary>The buffer; tensors view it as float or int through <see cref="ArrayView{T}.Cast{TOther}"/>.</summary>
    public MemoryBuffer1D<byte, Stride1D.Dense> Buffer { get; }

    /// <inheritdoc/>
    protected override void Free() => Buffer.Dispose();
}
