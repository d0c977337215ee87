using ILGPU;
using ILGPU.Algorithms;

namespace RA3.Kernels.Ilgpu;

/// <summary>Sizes of a segment-scoring chunk launch.</summary>
internal readonly record struct SegmentDims(int Vc, int C0, int R0, int L, int Lines, int First);

/// <summary>
/// The row kernels of chunked segment scoring on ILGPU (the chunk logits come from the
/// backend's GEMM): one thread per row for the running log-sum-exp update and the in-place
/// dlogits, one per sequence for the finish. The same steps as the managed <see cref="Cpu.SegmentKernel"/>.
/// </summary>
internal static class SegmentKernels
{
    /// <summary>state[r] = (max, Σ exp(x − max), target logit) updated with the chunk row r.</summary>
    public static void ChunkForward(Index1D r, ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> state, SegmentDims s)
    {
        long x = (long)(int)r * s.Vc, st = (long)(int)r * 3;
        float m = s.First != 0 ? float.NegativeInfinity : state[st], sum = s.First != 0 ? 0f : state[st + 1];
        int t = targets[r] - s.C0;
        if (t >= 0 && t < s.Vc)
        {
            state[st + 2] = logits[x + t];
        }
        else if (s.First != 0)
        {
            state[st + 2] = 0f;
        }

        float cm = float.NegativeInfinity;
        for (int i = 0; i < s.Vc; i++)
        {
            cm = XMath.Max(cm, logits[x + i]);
        }

        float nm = XMath.Max(m, cm), acc = 0f;
        for (int i = 0; i < s.Vc; i++)
        {
            acc += XMath.Exp(logits[x + i] - nm);
        }

        state[st] = nm;
        state[st + 1] = (sum * XMath.Exp(m - nm)) + acc;
    }

    /// <summary>lse of the rows of sequence n and their sums per line (scores row n overwritten).</summary>
    public static void Finish(Index1D n, ArrayView<float> state, ArrayView<int> lineIds, ArrayView<float> lse, ArrayView<float> scores, SegmentDims s)
    {
        long so = (long)(int)n * s.Lines;
        for (int i = 0; i < s.Lines; i++)
        {
            scores[so + i] = 0f;
        }

        for (long r = (long)(int)n * s.L; r < (long)((int)n + 1) * s.L; r++)
        {
            float v = state[r * 3] + XMath.Log(state[(r * 3) + 1]);
            lse[r] = v;
            if (lineIds[r] >= 0)
            {
                scores[so + lineIds[r]] += state[(r * 3) + 2] - v;
            }
        }
    }

    /// <summary>Row r of the chunk becomes g·(onehot(target) − exp(x − lse)).</summary>
    public static void ChunkBackward(Index1D r, ArrayView<float> logits, ArrayView<int> targets, ArrayView<int> lineIds, ArrayView<float> lse, ArrayView<float> dScores, SegmentDims s)
    {
        long x = (long)(int)r * s.Vc;
        int line = lineIds[r];
        float g = line >= 0 ? dScores[((long)(s.R0 + (int)r) / s.L * s.Lines) + line] : 0f, e = lse[r];
        for (int i = 0; i < s.Vc; i++)
        {
            logits[x + i] = g == 0f ? 0f : -g * XMath.Exp(logits[x + i] - e);
        }

        int t = targets[r] - s.C0;
        if (g != 0f && t >= 0 && t < s.Vc)
        {
            logits[x + t] += g;
        }
    }
}
