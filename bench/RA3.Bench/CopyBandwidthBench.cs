using BenchmarkDotNet.Attributes;
using RA3.Kernels.Cpu;

namespace RA3.Bench;

/// <summary>
/// The machine's copy bandwidth: 256 MiB (far past the last-level cache) copied by every worker
/// thread at once, a slice each — the bound of the memory-bound kernels (the ELBO scan, decode),
/// stated beside the FMA peak in every table.
/// </summary>
public unsafe class CopyBandwidthBench
{
    /// <summary>Bytes copied per call.</summary>
    public const long Bytes = 256L << 20;

    private byte* source;
    private byte* destination;

    /// <summary>Bytes moved per call: read and written.</summary>
    public static double Traffic => 2.0 * Bytes;

    [GlobalSetup]
    public void Setup()
    {
        source = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)Bytes, 64);
        destination = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)Bytes, 64);
        new Span<byte>(source, (int)Math.Min(Bytes, int.MaxValue)).Fill(1);
        new Span<byte>(destination, (int)Math.Min(Bytes, int.MaxValue)).Fill(2);
    }

    [Benchmark]
    public void Copy() => WorkerPool.For(WorkerPool.Threads, new Slices { Source = source, Destination = destination });

    [GlobalCleanup]
    public void Cleanup()
    {
        System.Runtime.InteropServices.NativeMemory.AlignedFree(source);
        System.Runtime.InteropServices.NativeMemory.AlignedFree(destination);
    }

    private struct Slices : IParallelBody
    {
        public byte* Source;
        public byte* Destination;

        public readonly void Run(int index)
        {
            // Equal slices, the last with the remainder: every byte of Traffic is moved, at any thread count.
            long slice = Bytes / WorkerPool.Threads, start = index * slice, count = index == WorkerPool.Threads - 1 ? Bytes - start : slice;
            Buffer.MemoryCopy(Source + start, Destination + start, count, count);
        }
    }
}
