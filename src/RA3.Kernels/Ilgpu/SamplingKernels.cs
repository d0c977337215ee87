using ILGPU;
using ILGPU.Algorithms;

namespace RA3.Kernels.Ilgpu;

/// <summary>Scalars of a sampling launch: V, P probes per row, temperature, top-p, top-k, whether banned ids are given.</summary>
internal readonly record struct SamplingParams(int V, int P, float Temperature, float TopP, int TopK, int HasBanned, int HasEntropies);

/// <summary>
/// <see cref="Ops.Backend.SampleTokens"/> on ILGPU, one thread per row, following the reference's
/// definitions (<c>ReferenceKernels.SampleTokens</c>): no sort and no scratch — the weights are
/// recomputed in each bisection pass over the row. Simple and correct; a GPU-tuned version (a block
/// per row with reductions) belongs to the CUDA path.
/// </summary>
internal static class SamplingKernels
{
    /// <summary>Row r: token, its log-probabilities and the probes'.</summary>
    public static void Sample(Index1D r, ArrayView<float> logits, ArrayView<float> uniforms, ArrayView<int> banned, ArrayView<int> probes, ArrayView<int> tokens, ArrayView<float> logProbs, ArrayView<float> sampleLogProbs, ArrayView<float> probeLogProbs, ArrayView<float> entropies, SamplingParams s)
    {
        long o = (long)r.X * s.V;
        float max = float.NegativeInfinity;
        bool nan = false;
        for (int i = 0; i < s.V; i++)
        {
            float x = logits[o + i];
            nan |= XMath.IsNaN(x);
            max = XMath.Max(max, x);
        }

        double sum = 0;
        for (int i = 0; i < s.V && !nan && max > float.NegativeInfinity; i++)
        {
            sum += XMath.Exp((double)logits[o + i] - max);
        }

        double lse = max + XMath.Log(sum);
        if (s.HasEntropies == 1)
        {
            double entropy = 0;
            for (int i = 0; i < s.V && !nan; i++)
            {
                double logP = logits[o + i] - lse;
                entropy -= logits[o + i] > float.NegativeInfinity ? XMath.Exp(logP) * logP : 0;
            }

            entropies[r] = nan ? float.NaN : (float)entropy;
        }

        for (int i = 0; i < s.P; i++)
        {
            int probe = probes[((long)r.X * s.P) + i];
            probeLogProbs[((long)r.X * s.P) + i] = nan ? float.NaN : probe < 0 ? 0f : (float)(logits[o + probe] - lse);
        }

        int count = 0, best = -1;
        float zMax = float.NegativeInfinity;
        for (int i = 0; i < s.V && !nan; i++)
        {
            if (Allowed(logits, banned, o, i, s))
            {
                count++;
                best = best < 0 || logits[o + i] > logits[o + best] ? i : best;
                zMax = s.Temperature > 0f ? XMath.Max(zMax, logits[o + i] / s.Temperature) : zMax;
            }
        }

        if (count == 0)
        {
            tokens[r] = -1;
            logProbs[r] = float.NaN;
            sampleLogProbs[r] = float.NaN;
            return;
        }

        if (s.Temperature == 0f)
        {
            tokens[r] = best;
            logProbs[r] = (float)(logits[o + best] - lse);
            sampleLogProbs[r] = 0f;
            return;
        }

        // Top-k boundary (kTau, kQuota): every allowed token when top-k keeps all.
        float kTau = float.NegativeInfinity;
        int kQuota = int.MaxValue;
        if (s.TopK > 0 && s.TopK < count)
        {
            kTau = Boundary(logits, banned, o, s, zMax, float.NegativeInfinity, int.MaxValue, s.TopK, 0);
            kQuota = Quota(logits, banned, o, s, zMax, float.NegativeInfinity, int.MaxValue, kTau, s.TopK, 0);
        }

        float pTau = kTau;
        int pQuota = kQuota;
        if (s.TopP < 1f)
        {
            double totalK = Measure(logits, banned, o, s, zMax, kTau, kQuota, float.NegativeInfinity, false, 1);
            pTau = Boundary(logits, banned, o, s, zMax, kTau, kQuota, s.TopP * totalK, 1);
            pQuota = Quota(logits, banned, o, s, zMax, kTau, kQuota, pTau, s.TopP * totalK, 1);
        }

        double mass = Measure(logits, banned, o, s, zMax, pTau, pQuota, float.NegativeInfinity, false, 1);
        double target = XMath.Min(uniforms[r], 1f) * mass, acc = 0;
        int token = -1;
        for (int i = 0, tied = 0; i < s.V; i++)
        {
            if (In(logits, banned, o, i, s, pTau, pQuota, ref tied))
            {
                acc += XMath.Exp((double)(logits[o + i] / s.Temperature) - zMax);
                token = i;
                if (acc > target)
                {
                    break;
                }
            }
        }

        tokens[r] = token;
        logProbs[r] = (float)(logits[o + token] - lse);
        sampleLogProbs[r] = (float)((double)(logits[o + token] / s.Temperature) - zMax - XMath.Log(mass));
    }

    private static bool Allowed(ArrayView<float> logits, ArrayView<int> banned, long o, int i, SamplingParams s) =>
        (s.HasBanned == 0 || banned[i] == 0) && logits[o + i] > float.NegativeInfinity;

    /// <summary>Whether token i is in the set (allowed, above τ, or tied at τ within the quota, counted in index order through <paramref name="tied"/>).</summary>
    private static bool In(ArrayView<float> logits, ArrayView<int> banned, long o, int i, SamplingParams s, float tau, int quota, ref int tied)
    {
        if (!Allowed(logits, banned, o, i, s))
        {
            return false;
        }

        float z = logits[o + i] / s.Temperature;
        if (z > tau)
        {
            return true;
        }

        return z == tau && tied++ < quota;
    }

    /// <summary>Count (byMass 0) or mass (1) of the set (τ, quota)'s members with z ≥ at (or &gt; at when strict).</summary>
    private static double Measure(ArrayView<float> logits, ArrayView<int> banned, long o, SamplingParams s, float zMax, float tau, int quota, float at, bool strict, int byMass)
    {
        double sum = 0;
        for (int i = 0, tied = 0; i < s.V; i++)
        {
            if (In(logits, banned, o, i, s, tau, quota, ref tied))
            {
                float z = logits[o + i] / s.Temperature;
                if (strict ? z > at : z >= at)
                {
                    sum += byMass == 1 ? XMath.Exp((double)z - zMax) : 1.0;
                }
            }
        }

        return sum;
    }

    /// <summary>The smallest member value τ' such that the members with z ≥ τ' reach <paramref name="target"/> (bisection on the order key).</summary>
    private static float Boundary(ArrayView<float> logits, ArrayView<int> banned, long o, SamplingParams s, float zMax, float tau, int quota, double target, int byMass)
    {
        float top = float.NegativeInfinity, bottom = float.PositiveInfinity;
        for (int i = 0, tied = 0; i < s.V; i++)
        {
            if (In(logits, banned, o, i, s, tau, quota, ref tied))
            {
                float z = logits[o + i] / s.Temperature;
                top = XMath.Max(top, z);
                bottom = XMath.Min(bottom, z);
            }
        }

        int lo = Key(bottom), hi = Key(top);
        while (lo < hi)
        {
            int mid = lo + (int)(((long)hi - lo + 1) / 2);
            if (Measure(logits, banned, o, s, zMax, tau, quota, Value(mid), false, byMass) >= target)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }

        float floor = Value(lo), result = float.PositiveInfinity;
        for (int i = 0, tied = 0; i < s.V; i++)
        {
            if (In(logits, banned, o, i, s, tau, quota, ref tied))
            {
                float z = logits[o + i] / s.Temperature;
                result = z >= floor ? XMath.Min(result, z) : result;
            }
        }

        return result;
    }

    /// <summary>How many members tied at <paramref name="at"/> join, in index order, until the set reaches the target.</summary>
    private static int Quota(ArrayView<float> logits, ArrayView<int> banned, long o, SamplingParams s, float zMax, float tau, int quota, float at, double target, int byMass)
    {
        double above = Measure(logits, banned, o, s, zMax, tau, quota, at, true, byMass);
        int joined = 0;
        for (int i = 0, tied = 0; i < s.V && above < target; i++)
        {
            if (In(logits, banned, o, i, s, tau, quota, ref tied) && logits[o + i] / s.Temperature == at)
            {
                above += byMass == 1 ? XMath.Exp((double)(logits[o + i] / s.Temperature) - zMax) : 1.0;
                joined++;
            }
        }

        return joined;
    }

    /// <summary>The order-preserving key of a float (as <c>ReferenceKernels.OrderKey</c>).</summary>
    private static int Key(float x)
    {
        int bits = (int)Interop.FloatAsInt(x);
        return bits >= 0 ? bits : bits ^ int.MaxValue;
    }

    private static float Value(int key) => Interop.IntAsFloat((uint)(key >= 0 ? key : key ^ int.MaxValue));
}
