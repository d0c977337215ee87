using RA3.Kernels.Tensors;

namespace RA3.Kernels.Cpu;

/// <summary>Conversion between float32 and bfloat16 storage on all cores (<see cref="BFloat16"/>'s vector loops, one chunk per task).</summary>
internal static unsafe class ConvertKernel
{
    /// <summary>A conversion of <see cref="Count"/> elements between float32 and bfloat16 storage, one chunk per task.</summary>
    public struct Body : IParallelBody
    {
        public void* Src;
        public void* Dst;
        public long Count;
        public bool ToBFloat16;

        public readonly int Tasks => Chunks.Count(Count, Chunks.Elements);

        public readonly void Run(int index)
        {
            (long start, int n) = Chunks.Range(index, Count, Chunks.Elements);
            if (ToBFloat16)
            {
                BFloat16.Round(new ReadOnlySpan<float>((float*)Src + start, n), new Span<ushort>((ushort*)Dst + start, n));
            }
            else
            {
                BFloat16.Widen(new ReadOnlySpan<ushort>((ushort*)Src + start, n), new Span<float>((float*)Dst + start, n));
            }
        }
    }
}
