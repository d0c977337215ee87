using RA3.Model.Optim;
using RA3.Model.Scoring;
using RA3.Model;
using RA3.Train.Distributed;
using RA3.Train.Runs;

namespace RA3.Train.Midtraining;

/// <summary>Settings of one group-relative policy-gradient update (the E-step's and RLVR's).</summary>
/// <param name="LearningRate">AdamW step size.</param>
/// <param name="KlCoefficient">β of the KL penalty to the reference policy (k2 estimator on the sampled tokens).</param>
/// <param name="ClipRange">ε of the clipped ratio objective (matters when a batch is reused for several updates).</param>
/// <param name="GradClip">Gradient-norm clip.</param>
public sealed record PolicyGradientOptions(float LearningRate = 5e-5f, double KlCoefficient = 0.05, double ClipRange = 0.2, float GradClip = 1f);

/// <summary>
/// One sequence of a policy-gradient batch: tokens, and for each token position p whether token p
/// was the policy's action, its advantage and its log-probability under the sampling policy.
/// </summary>
/// <param name="Ids">Tokens.</param>
/// <param name="Acting">Per token: chosen by the policy (sampled), not forced.</param>
/// <param name="Advantages">Per token: the advantage credited to it (read where <paramref name="Acting"/>).</param>
/// <param name="OldLogProbs">Per token: log π_old(token | before) at sampling time (read where acting); null when the policy that sampled is the one about to be updated.</param>
public sealed record PolicySequence(int[] Ids, bool[] Acting, float[] Advantages, float[]? OldLogProbs);

/// <summary>What one update measured.</summary>
/// <param name="ActionTokens">Tokens the update credited.</param>
/// <param name="MeanKl">Mean k3 estimate (e^r − r − 1, r = log π_ref − log π) of KL(π ‖ π_ref) over them: an unbiased, non-negative value.</param>
/// <param name="ClippedFraction">Share of them whose ratio was clipped.</param>
/// <param name="GradNorm">Gradient norm before clipping.</param>
public sealed record PolicyStepStats(long ActionTokens, double MeanKl, double ClippedFraction, double GradNorm);

/// <summary>
/// The group-relative policy-gradient update (spec §3 E-step and §6 RLVR): per action token the
/// clipped-ratio surrogate A·min(ρ, clip(ρ, 1 ± ε)) minus β·KL to the reference policy, averaged
/// over the batch's action tokens; its gradient goes through the model's weighted backward
/// (<see cref="Transformer.Backward(Activations, ReadOnlySpan{float})"/>), which needs only
/// ∂loss/∂log π per token — computed here on the host.
/// <para>
/// Among the ranks of the optimizer's <see cref="AdamWOptimizer.Group"/>, every rank holds the
/// whole batch and runs the forward and backward passes of its contiguous share of the sequences,
/// with the token weights normalised by the whole batch's action tokens; the ranks sum their
/// gradients (and the KL and clipping counts) before clipping and AdamW.
/// </para>
/// </summary>
public sealed class PolicyGradient(Transformer policy, Transformer reference, AdamWOptimizer optimizer, PolicyGradientOptions options, NonFiniteGuard? guard = null) : IDisposable
{
    private Activations? trainPlan;
    private Activations? referencePlan;

    /// <summary>
    /// ∂(−objective)/∂log π(token) as the weight w of −w·log π: with ρ = exp(log π − log π_old),
    /// the surrogate contributes A·ρ unless the ratio is clipped on the side A pushes it to (then
    /// 0); the KL penalty is β·½(log π − log π_ref)² (the k2 estimator, whose gradient on sampled
    /// tokens is the reverse KL's), contributing −β(log π − log π_ref). Unlike the k3 estimator's
    /// e^(log π_ref − log π) it stays linear when exploration samples a token the policy has made
    /// unlikely.
    /// </summary>
    public static float TokenWeight(double advantage, double logProb, double oldLogProb, double referenceLogProb, double clipRange, double klCoefficient, out bool clipped)
    {
        double ratio = Math.Exp(logProb - oldLogProb);
        clipped = (advantage > 0 && ratio > 1 + clipRange) || (advantage < 0 && ratio < 1 - clipRange);
        double surrogate = clipped ? 0 : advantage * ratio;
        return (float)(surrogate - (klCoefficient * (logProb - referenceLogProb)));
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
            if (s.Acting.Length != s.Ids.Length || s.Advantages.Length != s.Ids.Length || (s.OldLogProbs is not null && s.OldLogProbs.Length != s.Ids.Length))
            {
                throw new ArgumentException($"policy sequence {i}: {s.Ids.Length} tokens but {s.Acting.Length} acting flags, {s.Advantages.Length} advantages, {s.OldLogProbs?.Length} old log-probabilities");
            }
        }

        long acting = batch.Sum(s => (long)s.Acting.Count(a => a));  // the whole batch's: every rank's weights share one normaliser
        var group = optimizer.Group;
        var (first, b) = DataParallel.ShareOf(batch.Count, group.Rank, group.Size);
        var mine = batch.Skip(first).Take(b).ToList();
        int time = 0;
        var referenceLogProbs = Array.Empty<float>();
        if (b > 0)
        {
            (var ids, var mask, time) = Scorer.Pad([.. mine.Select(s => s.Ids)]);
            referencePlan = Reuse(referencePlan, reference, b, time, PassKind.Score);
            referencePlan.SetBatch(ids, mask);
            reference.Forward(referencePlan);
            referenceLogProbs = new float[b * time];
            referencePlan.TokenLogProbs.CopyTo<float>(referenceLogProbs);
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

            stats = Update(mine, old!, logProbs, referenceLogProbs, time, ((batchIndex - 1) * epochs) + e + 1, acting);
        }

        return stats;
    }

    // One update from the forward pass in the train plan: this rank's token weights and weighted
    // backward, the ranks' gradients summed, clip, AdamW.
    private PolicyStepStats Update(IReadOnlyList<PolicySequence> batch, float[][] old, float[] logProbs, float[] referenceLogProbs, int time, int step, long acting)
    {
        int b = batch.Count;
        var weights = new float[b * time];
        double kl = 0;
        long clippedCount = 0;
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
                weights[row] = TokenWeight(s.Advantages[p], lp, old[i][p], referenceLogProbs[row], options.ClipRange, options.KlCoefficient, out bool clipped) / acting;
                kl += Math.Exp(r) - r - 1;
                clippedCount += clipped ? 1 : 0;
            }
        }

        var backend = policy.Backend;
        backend.Zero(policy.Gradients!.Buffer);
        if (b > 0)
        {
            policy.Backward(trainPlan!, weights);
        }

        optimizer.Group.AllReduceSum(policy.Gradients.Buffer);
        Span<double> figures = [kl, clippedCount];
        optimizer.Group.AllReduceSum(figures);
        double norm = backend.ClipGradNorm(policy.Gradients.Buffer, options.GradClip);
        if ((guard ?? StopAtFirst).Admit(step, figures[0], norm))
        {
            optimizer.Step(options.LearningRate, step);
        }

        return new PolicyStepStats(acting, figures[0] / Math.Max(acting, 1), figures[1] / Math.Max(acting, 1), norm);
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
