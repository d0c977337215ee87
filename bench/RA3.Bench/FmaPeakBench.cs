using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;
using RA3.Kernels.Cpu;

namespace RA3.Bench;

/// <summary>
/// The machine's float32 FMA peak: every worker thread runs 12 independent FMA chains on the
/// widest accelerated vector (enough to cover FMA latency × ports), nothing touches memory.
/// </summary>
public class FmaPeakBench
{
    /// <summary>FMA iterations per chain per thread.</summary>
    public const int Iterations = 4_000_000;

    /// <summary>FLOPs per call: threads × iterations × 12 chains × lanes × 2.</summary>
    public static double Flops => (double)WorkerPool.Threads * Iterations * 12 * Simd.Width * 2;

    [Benchmark]
    public float FmaPeak()
    {
        var body = new Chains();
        WorkerPool.For(WorkerPool.Threads, body);
        return 0f;
    }

    private struct Chains : IParallelBody
    {
        public readonly void Run(int index)
        {
            if (Vector512.IsHardwareAccelerated)
            {
                Run512(index);
            }
            else
            {
                Run256(index);
            }
        }

        private static void Run512(int seed)
        {
            var m = Vector512.Create(0.999f);
            var a = Vector512.Create(1e-3f * seed);
            Vector512<float> c0 = a, c1 = a, c2 = a, c3 = a, c4 = a, c5 = a, c6 = a, c7 = a, c8 = a, c9 = a, c10 = a, c11 = a;
            for (int i = 0; i < Iterations; i++)
            {
                c0 = Vector512.FusedMultiplyAdd(c0, m, a); c1 = Vector512.FusedMultiplyAdd(c1, m, a);
                c2 = Vector512.FusedMultiplyAdd(c2, m, a); c3 = Vector512.FusedMultiplyAdd(c3, m, a);
                c4 = Vector512.FusedMultiplyAdd(c4, m, a); c5 = Vector512.FusedMultiplyAdd(c5, m, a);
                c6 = Vector512.FusedMultiplyAdd(c6, m, a); c7 = Vector512.FusedMultiplyAdd(c7, m, a);
                c8 = Vector512.FusedMultiplyAdd(c8, m, a); c9 = Vector512.FusedMultiplyAdd(c9, m, a);
                c10 = Vector512.FusedMultiplyAdd(c10, m, a); c11 = Vector512.FusedMultiplyAdd(c11, m, a);
            }

            Sink = Vector512.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
        }

        private static void Run256(int seed)
        {
            var m = Vector256.Create(0.999f);
            var a = Vector256.Create(1e-3f * seed);
            Vector256<float> c0 = a, c1 = a, c2 = a, c3 = a, c4 = a, c5 = a, c6 = a, c7 = a, c8 = a, c9 = a, c10 = a, c11 = a;
            for (int i = 0; i < Iterations; i++)
            {
                c0 = Vector256.FusedMultiplyAdd(c0, m, a); c1 = Vector256.FusedMultiplyAdd(c1, m, a);
                c2 = Vector256.FusedMultiplyAdd(c2, m, a); c3 = Vector256.FusedMultiplyAdd(c3, m, a);
                c4 = Vector256.FusedMultiplyAdd(c4, m, a); c5 = Vector256.FusedMultiplyAdd(c5, m, a);
                c6 = Vector256.FusedMultiplyAdd(c6, m, a); c7 = Vector256.FusedMultiplyAdd(c7, m, a);
                c8 = Vector256.FusedMultiplyAdd(c8, m, a); c9 = Vector256.FusedMultiplyAdd(c9, m, a);
                c10 = Vector256.FusedMultiplyAdd(c10, m, a); c11 = Vector256.FusedMultiplyAdd(c11, m, a);
            }

            Sink = Vector256.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
        }
    }

    private static float Sink;
}
