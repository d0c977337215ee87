using RA3.Kernels.Reference;

namespace RA3.Kernels.Cpu;

/// <summary>
/// <see cref="Ops.Backend.SampleTokens"/> on the CPU, one row per task, following the reference's
/// definitions (<c>ReferenceKernels.SampleTokens</c>) without sorting: the weights w = exp(z − max) are
/// computed once into the row's scratch, and for top-p the tokens that cannot be in the nucleus — a
/// token with w &lt; (1 − p)·total / V has less mass below it than 1 − p, so everything above it
/// already reaches p — are dropped first, so the bisection passes read only the likely tokens.
/// </summary>
internal static unsafe class SamplingKernel
{
    /// <summary>Scratch floats per row: the weights and the candidate ids.</summary>
    public static long ScratchPerRow(int v) => 2L * v;

    /// <summary>Operands.</summary>
    public struct Body : IParallelBody
    {
        public float* Logits;
        public float* Uniforms;
        public int* Banned;
        public int* Probes;
        public int P;
        public int V;
        public float Temperature;
        public float TopP;
        public int TopK;
        public float* Scratch;
        public int* Tokens;
        public float* LogProbs;
        public float* SampleLogProbs;
        public float* ProbeLogProbs;
        public float* Entropies;

        public readonly void Run(int r)
        {
            var row = new ReadOnlySpan<float>(Logits + ((long)r * V), V);
            float* w = Scratch + (r * ScratchPerRow(V));
            int* ids = (int*)(w + V);
            float max = float.NegativeInfinity;
            bool nan = false;
            foreach (float x in row)
            {
                nan |= float.IsNaN(x);
                max = MathF.Max(max, x);
            }

            double sum = 0;
            for (int i = 0; i < V && !nan && max > float.NegativeInfinity; i++)
            {
                sum += Math.Exp(row[i] - max);
            }

            double lse = max + Math.Log(sum);
            if (Entropies is not null)
            {
                double entropy = 0;
                for (int i = 0; i < V && !nan; i++)
                {
                    double logP = row[i] - lse;
                    entropy -= row[i] > float.NegativeInfinity ? Math.Exp(logP) * logP : 0;
                }

                Entropies[r] = nan ? float.NaN : (float)entropy;
            }

            for (int i = 0; i < P; i++)
            {
                int probe = Probes[((long)r * P) + i];
                ProbeLogProbs[((long)r * P) + i] = nan ? float.NaN : probe < 0 ? 0f : (float)(row[probe] - lse);
            }

            // The allowed tokens, in index order, with z = logit / temperature.
            int count = 0;
            float zMax = float.NegativeInfinity;
            for (int i = 0; i < V && !nan; i++)
            {
                if ((Banned is null || Banned[i] == 0) && row[i] > float.NegativeInfinity)
                {
                    ids[count++] = i;
                    if (Temperature > 0f)
                    {
                        zMax = MathF.Max(zMax, row[i] / Temperature);
                    }
                }
            }

            if (count == 0)
            {
                (Tokens[r], LogProbs[r], SampleLogProbs[r]) = (-1, float.NaN, float.NaN);
                return;
            }

            if (Temperature == 0f)
            {
                int best = ids[0];
                for (int c = 1; c < count; c++)
                {
                    best = row[ids[c]] > row[best] ? ids[c] : best;
                }

                (Tokens[r], LogProbs[r], SampleLogProbs[r]) = (best, (float)(row[best] - lse), 0f);
                return;
            }

            double total = 0;
            for (int c = 0; c < count; c++)
            {
                w[c] = (float)Math.Exp((row[ids[c]] / Temperature) - zMax);
                total += w[c];
            }

            if (TopK > 0 && TopK < count)
            {
                count = Keep(row, w, ids, count, TopK, byMass: false, ref total);
            }

            if (TopP < 1f)
            {
                // Tokens that cannot be in the nucleus (half the bound, for rounding) leave first.
                double bound = 0.5 * (1 - TopP) * total / count;
                int kept = 0;
                for (int c = 0; c < count; c++)
                {
                    if (w[c] >= bound)
                    {
                        (ids[kept], w[kept]) = (ids[c], w[c]);
                        kept++;
                    }
                }

                double nucleusTarget = TopP * total;
                count = Keep(row, w, ids, kept, nucleusTarget, byMass: true, ref total);
            }

            double target = Math.Min(Uniforms[r], 1f) * total, acc = 0;
            int pick = count - 1;
            for (int c = 0; c < count; c++)
            {
                acc += w[c];
                if (acc > target)
                {
                    pick = c;
                    break;
                }
            }

            int token = ids[pick];
            (Tokens[r], LogProbs[r], SampleLogProbs[r]) = (token, (float)(row[token] - lse), (float)Math.Log(w[pick] / total));
        }

        /// <summary>
        /// Keeps, in place and in index order, the candidates of the set whose count (or mass) first
        /// reaches <paramref name="target"/>: those above the boundary value τ found by bisection on
        /// z's order key, then the ones tied at τ in index order; returns their count, their mass in <paramref name="total"/>.
        /// </summary>
        private readonly int Keep(ReadOnlySpan<float> row, float* w, int* ids, int count, double target, bool byMass, ref double total)
        {
            float top = float.NegativeInfinity, bottom = float.PositiveInfinity;
            for (int c = 0; c < count; c++)
            {
                float z = row[ids[c]] / Temperature;
                (top, bottom) = (MathF.Max(top, z), MathF.Min(bottom, z));
            }

            int lo = ReferenceKernels.OrderKey(bottom), hi = ReferenceKernels.OrderKey(top);
            while (lo < hi)
            {
                int mid = lo + (int)(((long)hi - lo + 1) / 2);
                if (Above(row, w, ids, count, ReferenceKernels.FromOrderKey(mid), strict: false, byMass) >= target)
                {
                    lo = mid;
                }
                else
                {
                    hi = mid - 1;
                }
            }

            float tau = float.PositiveInfinity, floor = ReferenceKernels.FromOrderKey(lo);
            for (int c = 0; c < count; c++)
            {
                float z = row[ids[c]] / Temperature;
                tau = z >= floor ? MathF.Min(tau, z) : tau;
            }

            double above = Above(row, w, ids, count, tau, strict: true, byMass);
            int kept = 0;
            total = 0;
            for (int c = 0; c < count; c++)
            {
                float z = row[ids[c]] / Temperature;
                bool tiedIn = z == tau && above < target;
                if (z > tau || tiedIn)
                {
                    above += tiedIn ? (byMass ? w[c] : 1) : 0;
                    total += w[c];
                    (ids[kept], w[kept]) = (ids[c], w[c]);
                    kept++;
                }
            }

            return kept;
        }

        /// <summary>Count or mass of the candidates with z ≥ τ (or &gt; τ).</summary>
        private readonly double Above(ReadOnlySpan<float> row, float* w, int* ids, int count, float tau, bool strict, bool byMass)
        {
            double sum = 0;
            for (int c = 0; c < count; c++)
            {
                float z = row[ids[c]] / Temperature;
                sum += (strict ? z > tau : z >= tau) ? (byMass ? w[c] : 1) : 0;
            }

            return sum;
        }
    }
}
