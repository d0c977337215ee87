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
public sealed record PolicyGradientOptions(
    float LearningRate = 5e-5f,
    double KlCoefficient = 0.05,
    double ClipLow = 0.2,
    double ClipHigh = 0.2,
    float GradClip = 1f,
    LossAggregation Aggregation = LossAggregation.TokenMean,
    int ConstantLength = 1,
    KlEstimator Kl = KlEstimator.K2,
    double ImportanceCap = 2.0);

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
/// <param name="ReferencePasses">Forward passes of the reference model this step ran (0 when β = 0 or the caller gave its log-probabilities).</param>
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
        int time = 0;
        var referenceLogProbs = Array.Empty<float>();
        if (b > 0)
        {
            (var ids, var mask, time) = Scorer.Pad([.. mine.Select(s => s.Ids)]);
            referenceLogProbs = new float[b * time];
            if (scoreReference)
            {
                referencePlan = Reuse(referencePlan, reference!, b, time, PassKind.Score);
                referencePlan.SetBatch(ids, mask);
                reference!.Forward(referencePlan);
                referencePlan.TokenLogProbs.CopyTo<float>(referenceLogProbs);
            }
            else if (options.KlCoefficient > 0)
            {
                for (int i = 0; i < b; i++)
                {
                    mine[i].ReferenceLogProbs!.AsSpan(1).CopyTo(referenceLogProbs.AsSpan(i * time));  // row p − 1 predicts token p
                }
            }

            trainPlan = Reuse(trainPlan, policy, b, time, PassKind.Train);
            trainPlan.SetBatch(ids, mask);
        }

        var logProbs = new float[b * time];
        var old = mine.Select(s => s.OldLogProbs).ToArray();
        PolicyStepStats stats = new(0, 0, 0, 0);
        for (int e = 0; e < epochs; e++)
        {
            if (b > 0)
            {
                policy.Forward(trainPlan!);
                trainPlan!.TokenLogProbs.CopyTo<float>(logProbs);
            }

            for (int i = 0; i < b; i++)
            {
                if (old[i] is null)
                {
                    old[i] = new float[mine[i].Ids.Length];
                    logProbs.AsSpan(i * time, mine[i].Ids.Length - 1).CopyTo(old[i].AsSpan(1));  // row p − 1 predicts token p
                }
            }

            stats = Update(mine, norm.AsSpan(first, b), old!, logProbs, referenceLogProbs, time, ((batchIndex - 1) * epochs) + e + 1) with { ReferencePasses = scoreReference ? 1 : 0 };
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

    // One update from the forward pass in the train plan: this rank's token weights (its sequences'
    // normalisers in norm) and weighted backward, the ranks' gradients summed, clip, AdamW.
    private PolicyStepStats Update(IReadOnlyList<PolicySequence> batch, ReadOnlySpan<double> norm, float[][] old, float[] logProbs, float[] referenceLogProbs, int time, int step)
    {
        int b = batch.Count;
        var weights = new float[b * time];
        double kl = 0;
        long acting = 0, low = 0, high = 0;
        for (int i = 0; i < b; i++)
        {
            var s = batch[i];
            for (int p = 1; p < s.Ids.Length; p++)
            {
                if (!s.Acting[p])
                {
                    continue;
                }

                int row = (i * time) + p - 1;  // row p − 1 predicts token p
                double lp = logProbs[row], r = referenceLogProbs[row] - lp;
                weights[row] = (float)(TokenWeight(s.Advantages[p], lp, old[i][p], referenceLogProbs[row], options, s.LogImportance?[p] ?? 0, out int clipped) * norm[i]);
                kl += options.KlCoefficient > 0 ? Math.Exp(r) - r - 1 : 0;
                acting++;
                low += clipped < 0 ? 1 : 0;
                high += clipped > 0 ? 1 : 0;
            }
        }

        var backend = policy.Backend;
        backend.Zero(policy.Gradients!.Buffer);
        if (b > 0)
        {
            policy.Backward(trainPlan!, weights);
        }

        optimizer.Group.AllReduceSum(policy.Gradients.Buffer);
        Span<double> figures = [kl, acting, low, high];
        optimizer.Group.AllReduceSum(figures);
        double gradNorm = backend.ClipGradNorm(policy.Gradients.Buffer, options.GradClip);
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
