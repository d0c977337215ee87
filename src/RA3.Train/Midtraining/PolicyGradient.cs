using RA3.Model.Optim;
using RA3.Model.Scoring;
using RA3.Model;
using RA3.Train.Distributed;
using RA3.Train.Runs;

namespace RA3.Train.Midtraining;

/// <summary>How a policy-gradient loss is averaged over a batch's tokens (TRL's <c>loss_type</c>).</summary>
public enum LossAggregation
{
    /// <summary>GRPO: each sequence's tokens averaged, then the sequences (a long completion's tokens weigh less each).</summary>
    SequenceMean,

    /// <summary>DAPO: every action token of the batch weighs the same.</summary>
    TokenMean,

    /// <summary>Dr. GRPO: the sum over tokens divided by a constant (sequences × a fixed length), so neither length nor batch composition rescales a token.</summary>
    Constant,
}

/// <summary>Which estimator of KL(π ‖ π_ref) on the sampled tokens the penalty differentiates (r = log π_ref − log π).</summary>
public enum KlEstimator
{
    /// <summary>k1 = −r: its gradient on a sampled token is β (a constant push down).</summary>
    K1,

    /// <summary>k2 = ½r²: its gradient on sampled tokens is the reverse KL's; linear in r.</summary>
    K2,

    /// <summary>k3 = eʳ − r − 1 (unbiased, non-negative value; its gradient is biased and grows exponentially where π ≪ π_ref).</summary>
    K3,
}

/// <summary>Settings of one group-relative policy-gradient update (the E-step's and RLVR's).</summary>
/// <param name="LearningRate">AdamW step size.</param>
/// <param name="KlCoefficient">β of the KL penalty to the reference policy (0: no penalty, and the reference is never run).</param>
/// <param name="ClipLow">ε_low: a negative advantage stops pushing once the ratio is below 1 − ε_low.</param>
/// <param name="ClipHigh">ε_high: a positive advantage stops pushing once the ratio is above 1 + ε_high (DAPO's clip-higher: 0.28).</param>
/// <param name="GradClip">Gradient-norm clip.</param>
/// <param name="Aggregation">How token losses are averaged.</param>
/// <param name="ConstantLength">The fixed length of <see cref="LossAggregation.Constant"/> (e.g. the most new tokens of a completion).</param>
/// <param name="Kl">The KL estimator the penalty differentiates.</param>
/// <param name="ImportanceCap">Truncation of the behaviour importance weight p/q of tokens drawn off-policy (<see cref="PolicySequence.LogImportance"/>), as truncated importance sampling does.</param>
/// <param name="MicroBatch">Most sequences in one forward and backward pass (TRL's per-device batch): a rank's share of the batch runs in micro-batches whose gradients add up before the one clip and AdamW step, so activation memory follows this, not the batch (0: the whole share at once).</param>
public sealed record PolicyGradientOptions(
    float LearningRate = 5e-5f,
    double KlCoefficient = 0.05,
    double ClipLow = 0.2,
    double ClipHigh = 0.2,
    float GradClip = 1f,
    LossAggregation Aggregation = LossAggregation.TokenMean,
    int ConstantLength = 1,
    KlEstimator Kl = KlEstimator.K2,
    double ImportanceCap = 2.0,
    int MicroBatch = 4);

/// <summary>
/// One sequence of a policy-gradient batch: tokens, and for each token position p whether token p
/// was the policy's action, its advantage and its log-probability under the sampling policy.
/// </summary>
/// <param name="Ids">Tokens.</param>
/// <param name="Acting">Per token: chosen by the policy (sampled), not forced.</param>
/// <param name="Advantages">Per token: the advantage credited to it (read where <paramref name="Acting"/>).</param>
/// <param name="OldLogProbs">Per token: log π_old(token | before) at sampling time (read where acting); null when the policy that sampled is the one about to be updated.</param>
/// <param name="LogImportance">Per token: log p/q, p the policy's probability of the choice, q the distribution it was drawn from (exploration, temperature, nucleus, masks); null or 0 where drawn from the policy itself.</param>
/// <param name="ReferenceLogProbs">Per token: log π_ref(token | before) when the caller has it already (the E-step's scorer is its reference); null: the reference model is run.</param>
public sealed record PolicySequence(int[] Ids, bool[] Acting, float[] Advantages, float[]? OldLogProbs, float[]? LogImportance = null, float[]? ReferenceLogProbs = null);

/// <summary>What one update measured.</summary>
/// <param name="ActionTokens">Tokens the update credited.</param>
/// <param name="MeanKl">Mean k3 estimate (e^r − r − 1, r = log π_ref − log π) of KL(π ‖ π_ref) over them: an unbiased, non-negative value, whatever estimator the penalty differentiates.</param>
/// <param name="ClippedFraction">Share of them whose ratio was clipped (either side).</param>
/// <param name="GradNorm">Gradient norm before clipping.</param>
/// <param name="ClipLowFraction">Share clipped below (negative advantage, ratio &lt; 1 − ε_low).</param>
/// <param name="ClipHighFraction">Share clipped above (positive advantage, ratio &gt; 1 + ε_high).</param>
/// <param name="ReferencePasses">Forward passes of the reference model this step ran, one per micro-batch (0 when β = 0 or the caller gave its log-probabilities).</param>
public sealed record PolicyStepStats(long ActionTokens, double MeanKl, double ClippedFraction, double GradNorm, double ClipLowFraction = 0, double ClipHighFraction = 0, int ReferencePasses = 0);

/// <summary>
/// The group-relative policy-gradient update (spec §3 E-step and §6 RLVR): per action token the
/// clipped-ratio surrogate min(ρA, clip(ρ, 1 − ε_low, 1 + ε_high)·A) minus β times a KL estimate to
/// the reference policy, weighted by the truncated importance weight of tokens drawn off-policy and
/// averaged as <see cref="LossAggregation"/> says; its gradient goes through the model's weighted
/// backward (<see cref="Transformer.Backward(Activations, ReadOnlySpan{float})"/>), which needs only
/// ∂loss/∂log π per token — computed here on the host. μ epochs on one batch re-use its old
/// log-probabilities, so from the second on the ratio moves and the clip acts. The reference may be
/// null when β = 0 or every sequence brings its reference log-probabilities.
/// <para>
/// Among the ranks of the optimizer's <see cref="AdamWOptimizer.Group"/>, every rank holds the
/// whole batch and runs the forward and backward passes of its contiguous share of the sequences,
/// with the token normalisers of the whole batch; the ranks sum their gradients (and the KL and
/// clipping counts) before clipping and AdamW.
/// </para>
/// </summary>
public sealed class PolicyGradient(Transformer policy, Transformer? reference, AdamWOptimizer optimizer, PolicyGradientOptions options, NonFiniteGuard? guard = null) : IDisposable
{
    private Activations? trainPlan;
    private Activations? referencePlan;

    /// <summary>
    /// ∂(−objective)/∂log π(token) as the weight w of −w·log π, before the aggregation's normaliser:
    /// with ρ = exp(log π − log π_old) the surrogate contributes A·ρ unless the ratio is clipped on
    /// the side A pushes it to (then 0); the KL penalty's estimator contributes −β·∂k/∂log π —
    /// k1: 1, k2: log π − log π_ref, k3: 1 − π_ref/π. The whole is multiplied by the behaviour
    /// weight min(p/q, cap) (<paramref name="logImportance"/> = log p/q), which makes both terms
    /// expectations under the policy although the token was drawn from q.
    /// </summary>
    public static float TokenWeight(double advantage, double logProb, double oldLogProb, double referenceLogProb, PolicyGradientOptions options, double logImportance, out int clipped)
    {
        ArgumentNullException.ThrowIfNull(options);
        double ratio = Math.Exp(logProb - oldLogProb);
        clipped = advantage > 0 && ratio > 1 + options.ClipHigh ? 1 : advantage < 0 && ratio < 1 - options.ClipLow ? -1 : 0;
        double surrogate = clipped != 0 ? 0 : advantage * ratio;
        double kl = options.KlCoefficient == 0 ? 0 : options.Kl switch
        {
            KlEstimator.K1 => 1,
            KlEstimator.K2 => logProb - referenceLogProb,
            _ => 1 - Math.Exp(referenceLogProb - logProb),
        };
        double behaviour = Math.Min(Math.Exp(logImportance), options.ImportanceCap);
        return (float)(behaviour * (surrogate - (options.KlCoefficient * kl)));
    }

    /// <summary>
    /// <paramref name="epochs"/> updates (μ) on <paramref name="batch"/>, padded to its longest
    /// sequence; <paramref name="batchIndex"/> counts batches from 1, so the optimizer's steps are
    /// (batchIndex − 1)·μ + 1 .. batchIndex·μ. A sequence without old log-probabilities was sampled
    /// by the policy as it stands: its old log-probabilities are read from the first update's forward
    /// pass (ratio 1 there), which saves a separate scoring pass. Returns the last update's figures.
    /// </summary>
    public PolicyStepStats Step(IReadOnlyList<PolicySequence> batch, int batchIndex, int epochs = 1)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentOutOfRangeException.ThrowIfLessThan(epochs, 1);
        if (batch.Count == 0)
        {
            return new PolicyStepStats(0, 0, 0, 0);
        }

        for (int i = 0; i < batch.Count; i++)
        {
            var s = batch[i];
            if (s.Acting.Length != s.Ids.Length || s.Advantages.Length != s.Ids.Length || (s.OldLogProbs is not null && s.OldLogProbs.Length != s.Ids.Length)
                || (s.LogImportance is not null && s.LogImportance.Length != s.Ids.Length) || (s.ReferenceLogProbs is not null && s.ReferenceLogProbs.Length != s.Ids.Length))
            {
                throw new ArgumentException($"policy sequence {i}: {s.Ids.Length} tokens but {s.Acting.Length} acting flags, {s.Advantages.Length} advantages, {s.OldLogProbs?.Length} old log-probabilities, {s.LogImportance?.Length} importance weights, {s.ReferenceLogProbs?.Length} reference log-probabilities");
            }
        }

        // Every rank holds the whole batch, so the choices below and the normalisers are the same on every rank.
        var norm = Normalisers(batch, options.Aggregation, options.ConstantLength);
        bool scoreReference = options.KlCoefficient > 0 && !batch.All(s => s.ReferenceLogProbs is not null);
        if (scoreReference && reference is null)
        {
            throw new InvalidOperationException("a KL penalty (β > 0) needs the reference model or the sequences' reference log-probabilities");
        }

        var group = optimizer.Group;
        var (first, b) = DataParallel.ShareOf(batch.Count, group.Rank, group.Size);
        var mine = batch.Skip(first).Take(b).ToList();
        int time = b == 0 ? 0 : Scorer.PaddedLength([.. mine.Select(s => s.Ids)]);  // one length for every micro-batch, so one plan serves them
        var micro = MicroBatches(mine, options.MicroBatch, time);
        var referenceLogProbs = new float[b * time];
        if (scoreReference)
        {
            foreach (var m in micro)
            {
                referencePlan = Reuse(referencePlan, reference!, m.Count, time, PassKind.Score);
                referencePlan.SetBatch(m.Ids, m.Mask);
                reference!.Forward(referencePlan);
                referencePlan.TokenLogProbs.CopyTo<float>(referenceLogProbs.AsSpan(m.First * time, m.Count * time));
            }
        }
        else if (options.KlCoefficient > 0)
        {
            for (int i = 0; i < b; i++)
            {
                mine[i].ReferenceLogProbs!.AsSpan(1).CopyTo(referenceLogProbs.AsSpan(i * time));  // row p − 1 predicts token p
            }
        }

        var logProbs = new float[b * time];
        var weights = new float[b * time];
        var old = mine.Select(s => s.OldLogProbs).ToArray();
        PolicyStepStats stats = new(0, 0, 0, 0);
        for (int e = 0; e < epochs; e++)
        {
            var backend = policy.Backend;
            backend.Zero(policy.Gradients!.Buffer);
            Span<double> figures = [0, 0, 0, 0];  // KL, action tokens, clipped below, clipped above
            foreach (var m in micro)
            {
                trainPlan = Reuse(trainPlan, policy, m.Count, time, PassKind.Train);
                trainPlan.SetBatch(m.Ids, m.Mask);
                policy.Forward(trainPlan);
                var rows = new Range(m.First * time, (m.First + m.Count) * time);
                trainPlan.TokenLogProbs.CopyTo<float>(logProbs.AsSpan(rows));
                for (int i = m.First; i < m.First + m.Count; i++)
                {
                    if (old[i] is null)
                    {
                        old[i] = new float[mine[i].Ids.Length];
                        logProbs.AsSpan(i * time, mine[i].Ids.Length - 1).CopyTo(old[i].AsSpan(1));  // row p − 1 predicts token p
                    }
                }

                Weigh(mine, m, norm.AsSpan(first, b), old!, logProbs, referenceLogProbs, time, weights, figures);
                policy.Backward(trainPlan, weights.AsSpan(rows));
            }

            stats = Apply(figures, ((batchIndex - 1) * epochs) + e + 1) with { ReferencePasses = scoreReference ? micro.Count : 0 };
        }

        return stats;
    }

    /// <summary>
    /// The normaliser of each sequence's tokens under <paramref name="aggregation"/>: 1 / (its action
    /// tokens × sequences) for the sequence mean, 1 / (all action tokens) for the token mean, 1 /
    /// (sequences × <paramref name="constantLength"/>) for the constant.
    /// </summary>
    public static double[] Normalisers(IReadOnlyList<PolicySequence> batch, LossAggregation aggregation, int constantLength)
    {
        ArgumentNullException.ThrowIfNull(batch);
        long all = batch.Sum(s => (long)s.Acting.Skip(1).Count(a => a));
        return [.. batch.Select(s =>
        {
            long own = s.Acting.Skip(1).Count(a => a);
            return aggregation switch
            {
                LossAggregation.SequenceMean => own == 0 ? 0 : 1.0 / (own * (double)batch.Count),
                LossAggregation.TokenMean => all == 0 ? 0 : 1.0 / all,
                _ => 1.0 / (batch.Count * (double)Math.Max(constantLength, 1)),
            };
        })];
    }

    // A micro-batch of this rank's sequences, padded to the share's length, and where it starts in the share.
    private sealed record MicroBatch(int First, int Count, int[] Ids, bool[] Mask);

    // The share split into as few micro-batches of at most `most` sequences as it takes, as equal in
    // size as they can be (16 sequences at 5 per pass: 4 × 4, so one plan serves every pass).
    private static List<MicroBatch> MicroBatches(List<PolicySequence> mine, int most, int time)
    {
        int count = mine.Count == 0 ? 0 : most <= 0 ? 1 : (mine.Count + most - 1) / most;
        var batches = new List<MicroBatch>(count);
        for (int k = 0; k < count; k++)
        {
            var (first, n) = DataParallel.ShareOf(mine.Count, k, count);
            var (ids, mask, _) = Scorer.Pad(mine.GetRange(first, n).ConvertAll(s => s.Ids), time);
            batches.Add(new MicroBatch(first, n, ids, mask));
        }

        return batches;
    }

    // The token weights of micro-batch m's rows (its sequences' normalisers in norm: the whole
    // batch's), adding its KL, action tokens and clip counts to figures.
    private void Weigh(List<PolicySequence> mine, MicroBatch m, ReadOnlySpan<double> norm, float[][] old, float[] logProbs, float[] referenceLogProbs, int time, float[] weights, Span<double> figures)
    {
        for (int i = m.First; i < m.First + m.Count; i++)
        {
            var s = mine[i];
            for (int p = 1; p < s.Ids.Length; p++)
            {
                if (!s.Acting[p])
                {
                    continue;
                }

                int row = (i * time) + p - 1;  // row p − 1 predicts token p
                double lp = logProbs[row], r = referenceLogProbs[row] - lp;
                weights[row] = (float)(TokenWeight(s.Advantages[p], lp, old[i][p], referenceLogProbs[row], options, s.LogImportance?[p] ?? 0, out int clipped) * norm[i]);
                figures[0] += options.KlCoefficient > 0 ? Math.Exp(r) - r - 1 : 0;
                figures[1]++;
                figures[2] += clipped < 0 ? 1 : 0;
                figures[3] += clipped > 0 ? 1 : 0;
            }
        }
    }

    // The update from the gradients the micro-batches added: the ranks' gradients and figures
    // summed, clip, AdamW (unless the guard refuses a non-finite step).
    private PolicyStepStats Apply(Span<double> figures, int step)
    {
        optimizer.Group.AllReduceSum(policy.Gradients!.Buffer);
        optimizer.Group.AllReduceSum(figures);
        double gradNorm = policy.Backend.ClipGradNorm(policy.Gradients.Buffer, options.GradClip);
        if ((guard ?? StopAtFirst).Admit(step, figures[0], gradNorm))
        {
            optimizer.Step(options.LearningRate, step);
        }

        double tokens = Math.Max(figures[1], 1);
        return new PolicyStepStats((long)figures[1], figures[0] / tokens, (figures[2] + figures[3]) / tokens, gradNorm, figures[2] / tokens, figures[3] / tokens);
    }

    /// <summary>Without a run's guard: stop at the first non-finite update, with no checkpoint to name.</summary>
    private static NonFiniteGuard StopAtFirst { get; } = new(0, () => null, TextWriter.Null);

    /// <inheritdoc/>
    public void Dispose()
    {
        trainPlan?.Dispose();
        referencePlan?.Dispose();
    }

    private static Activations Reuse(Activations? plan, Transformer model, int batch, int time, PassKind kind)
    {
        if (plan is not null && plan.B == batch && plan.T == time)
        {
            return plan;
        }

        plan?.Dispose();
        return model.Plan(batch, time, kind);
    }
}
