using System.Text.Json.Nodes;
using NUnit.Framework;
using RA3.Kernels.Cpu;
using RA3.Model.IO;
using RA3.Model.Optim;
using RA3.Model.Scoring;
using RA3.Model.Tokenizers;
using RA3.Model;
using RA3.Train.Evaluation;
using RA3.Train.Midtraining;
using RA3.Train.PostTraining;
using RA3.Train.Runs;
using RA3.Train.Sandbox;
using RA3.Train.Tasks;

namespace RA3.Train.Tests;

/// <summary>
/// RA3's EM loop end to end on the tiny Hugging Face llama fixture (with its BPE tokenizer, so the
/// tokenizer-generic paths run): rollouts sampled through the KV cache agree with a full forward
/// pass and keep every expert line; the policy-gradient token weights on hand cases and an update
/// moving log-probabilities the way the advantage says; a whole EM round raising the ELBO of its
/// traces, with parsable bootstrapped traces and a resume after a kill reproducing the
/// uninterrupted run; RLVR steps with partial credit and exact resume.
/// </summary>
[Order(3)]  // before the end-to-end fixtures: its hand-computed checks fail a defect in seconds, where mutation testing stops a run
public sealed class EmLoopTests
{
    private static readonly string ModelDir = TinyRuns.ModelDir;
    private static readonly string TokenizerDir = TinyRuns.TokenizerDir;
    private CpuBackend cpu = null!;
    private Transformer model = null!;
    private TextTokenizer tokenizer = null!;
    private string work = null!;

    [OneTimeSetUp]
    public void Open()
    {
        cpu = new CpuBackend();
        model = HuggingFaceCheckpoint.Load(ModelDir, cpu, trainable: true);
        tokenizer = TokenizerLoader.Load(TokenizerDir);
        work = Directory.CreateTempSubdirectory("ra3-em-").FullName;
    }

    [OneTimeTearDown]
    public void Close()
    {
        model.Dispose();
        cpu.Dispose();
        Directory.Delete(work, recursive: true);
    }

    [Test]
    public void RolloutsKeepEveryExpertLineAndTheirLogProbsMatchAFullForwardPass()
    {
        var traces = ProceduralTasks.Generate(3, heldOut: false, 5).Select(t => Trace.FromCode(t.TaskId, t.Code)).ToList();
        var sampler = new RolloutSampler(model, tokenizer);
        var options = new RolloutOptions(Group: 3, LatentMaxTokens: 6, TopP: 1f, ThinkFloor: 0.6);
        var rollouts = sampler.Sample(traces, options, seed: 42);
        Assert.That(rollouts, Has.Count.EqualTo(9));
        Assert.That(rollouts.Select(r => r.Trace), Is.EqualTo(traces.SelectMany(t => Enumerable.Repeat(t, 3))), "trace-major order");
        Assert.That(rollouts.Sum(r => r.ThinkCount), Is.GreaterThan(0), "with a 60 % exploration floor some rollouts think");
        var full = Scorer.SequenceLogProbs(model, [.. rollouts.Select(r => r.Ids)]);
        for (int i = 0; i < rollouts.Count; i++)
        {
            var r = rollouts[i];
            var code = Enumerable.Range(0, r.Ids.Length).Where(p => r.Owner[p] >= 0).Select(p => (r.Ids[p], r.Owner[p]));
            var kept = Enumerable.Range(1, r.Trace.Count).Where(r.Thinks).ToDictionary(t => t, t => r.Rationales[t - 1]!);
            var canonical = LineTokens.Of(tokenizer, r.Trace, kept);
            Assert.That(code, Is.EqualTo(Enumerable.Range(0, canonical.Ids.Length).Where(p => canonical.Owner[p] >= 0).Select(p => (canonical.Ids[p], canonical.Owner[p]))), "the code tokens, and their lines, of the document's canonical encoding with the rollout's rationales");
            for (int p = 0; p < r.Ids.Length; p++)
            {
                if (r.Boundary[p] > 0)
                {
                    Assert.That(r.OldLogProbs[p], Is.EqualTo(full[i][p]).Within(1e-4), $"rollout {i} token {p}: the KV-cache walk's log-probability vs a full forward pass");
                }
            }

            for (int t = 1; t <= r.Trace.Count; t++)
            {
                bool hasTokens = Enumerable.Range(0, r.Ids.Length).Any(p => r.Boundary[p] == t && r.Owner[p] == LineTokens.RationaleOwner);
                Assert.That(hasTokens, Is.EqualTo(r.Thinks(t)), $"rollout {i} boundary {t}: rationale tokens exactly where it thought");
                Assert.That(!r.Thinks(t) || r.Trace.RationaleAllowed(t), $"rollout {i} boundary {t}: a rationale only where a logical line of code starts");
            }

            // Decisions (a boundary's first chosen token): an act is against a comment opener, and
            // either carries p/q ≤ 1/(1 − ε); a rationale token at temperature 1 and top-p 1 carries the
            // mass left after masking control tokens, at most 1.
            for (int p = 0; p < r.Ids.Length; p++)
            {
                bool decision = r.Boundary[p] > 0 && (p == 0 || r.Boundary[p - 1] != r.Boundary[p]);
                if (r.ThinkIds[p] >= 0)
                {
                    Assert.That(decision, $"rollout {i} token {p}: only a decision names the opener it was against");
                    Assert.That(tokenizer.Decode([r.ThinkIds[p]]), Does.Contain("#"), $"rollout {i} token {p}: an act decision against a comment opener");
                }

                if (decision)
                {
                    Assert.That(Math.Exp(r.LogImportance[p]), Is.InRange(0.0, (1 / 0.4) + 1e-5), "a decision: p/q ≤ 1/(1 − ε)");
                }
                else if (r.Boundary[p] > 0)
                {
                    Assert.That(r.LogImportance[p], Is.LessThanOrEqualTo(1e-5), $"rollout {i} token {p}: a rationale token's p/q");
                }
            }
        }

        var again = sampler.Sample(traces, options, seed: 42);
        Assert.That(again.Select(r => r.Ids), Is.EqualTo(rollouts.Select(r => r.Ids)), "seeded");
        Assert.That(sampler.LastRows, Is.LessThan(rollouts.Sum(r => (long)r.Ids.Length)), "forced tokens after a walk's last choice are never run");
    }

    [Test]
    public void ABoundaryIsADecisionBetweenACommentOpenerAndTheLinesCode()
    {
        // Bytes: before line 3 (after a blank line 2) the think branch writes "    #" and act "    r";
        // the decision is '#' against 'r' after the shared indentation. Line 2 is blank: no decision
        // (its think branch would differ from act at an indentation byte, not at the comment's '#').
        var bytes = TokenizerLoader.Load("bytes");
        var trace = Trace.FromCode("t", "def f(x):\n\n    return x\n");
        var acting = LineTokens.Of(bytes, trace);
        var empty = new Dictionary<int, string>();
        Assert.That(LineTokens.Decision(bytes, trace, empty, 2, acting, 0), Is.Null, "a blank line");
        var point = LineTokens.Decision(bytes, trace, empty, 3, acting, 0)!;
        Assert.That(bytes.Decode([point.Thinking.Ids[point.Index]]), Is.EqualTo("#"));
        Assert.That(bytes.Decode([acting.Ids[point.Index]]), Is.EqualTo("r"));
        Assert.That(bytes.Decode(acting.Ids.AsSpan(1, point.Index - 1)), Is.EqualTo("def f(x):\n\n    "), "the shared tokens: everything before, the indentation included");
        Assert.That(LineTokens.Decision(bytes, trace, empty, 3, acting, point.Index + 1), Is.Null, "a decision behind tokens already fed is none");
        Assert.That(LineTokens.Decisions(bytes, trace, null, acting).Select(d => d.Boundary), Is.EqualTo(new[] { 1, 3 }));
    }

    [Test]
    public void TokenWeightsFollowTheClippedSurrogateTheKlEstimatorAndTheBehaviourWeight()
    {
        var o = new PolicyGradientOptions(KlCoefficient: 0.1, ClipLow: 0.2, ClipHigh: 0.28);
        Assert.That(PolicyGradient.TokenWeight(0.7, -1, -1, -1, o, 0, out int c1), Is.EqualTo(0.7).Within(1e-6));
        Assert.That(c1, Is.EqualTo(0));
        Assert.That(PolicyGradient.TokenWeight(0.7, Math.Log(1.25), 0, Math.Log(1.25), o, 0, out int c2), Is.EqualTo(0.7 * 1.25).Within(1e-6), "ratio 1.25 < 1 + ε_high: the positive side still pushes");
        Assert.That(c2, Is.EqualTo(0));
        Assert.That(PolicyGradient.TokenWeight(0.7, Math.Log(1.3), 0, Math.Log(1.3), o, 0, out int c3), Is.EqualTo(0).Within(1e-6), "above 1 + ε_high with A > 0: clipped");
        Assert.That(c3, Is.EqualTo(1));
        Assert.That(PolicyGradient.TokenWeight(-0.7, Math.Log(0.75), 0, Math.Log(0.75), o, 0, out int c4), Is.EqualTo(0).Within(1e-6), "below 1 − ε_low with A < 0: clipped");
        Assert.That(c4, Is.EqualTo(-1));
        Assert.That(PolicyGradient.TokenWeight(-0.7, Math.Log(1.5), 0, Math.Log(1.5), o with { KlCoefficient = 0 }, 0, out _), Is.EqualTo(-0.7 * 1.5).Within(1e-6), "A < 0 is not clipped above");
        Assert.That(PolicyGradient.TokenWeight(0, Math.Log(2), 0, Math.Log(2), o, 0, out int c5) + PolicyGradient.TokenWeight(0, Math.Log(0.5), 0, Math.Log(0.5), o, 0, out int c6), Is.EqualTo(0));
        Assert.That((c5, c6), Is.EqualTo((0, 0)), "A = 0 pushes neither way, so no ratio counts as clipped");

        // ε = 0 clips every move away from the sampling policy, but not the on-policy ratio 1 itself:
        // the clip is strict, so the first epoch's tokens still push.
        var exact = o with { KlCoefficient = 0, ClipLow = 0, ClipHigh = 0 };
        Assert.That(PolicyGradient.TokenWeight(0.7, -1, -1, -1, exact, 0, out int c7), Is.EqualTo(0.7).Within(1e-6));
        Assert.That(PolicyGradient.TokenWeight(-0.7, -1, -1, -1, exact, 0, out int c8), Is.EqualTo(-0.7).Within(1e-6));
        Assert.That((c7, c8), Is.EqualTo((0, 0)));

        // KL: −β·∂k/∂log π with π_ref = 2π (r = ln 2): k1 → −β, k2 → β ln 2, k3 → β(2 − 1).
        double lp = -2, lref = -2 + Math.Log(2);
        Assert.That(PolicyGradient.TokenWeight(0, lp, lp, lref, o with { Kl = KlEstimator.K1 }, 0, out _), Is.EqualTo(-0.1).Within(1e-6));
        Assert.That(PolicyGradient.TokenWeight(0, lp, lp, lref, o with { Kl = KlEstimator.K2 }, 0, out _), Is.EqualTo(0.1 * Math.Log(2)).Within(1e-6));
        Assert.That(PolicyGradient.TokenWeight(0, lp, lp, lref, o with { Kl = KlEstimator.K3 }, 0, out _), Is.EqualTo(0.1).Within(1e-6));
        Assert.That(PolicyGradient.TokenWeight(0, -30, -30, -1, o, 0, out _), Is.EqualTo(2.9).Within(1e-5), "k2: linear, not exponential, in the log ratio");
        Assert.That(PolicyGradient.TokenWeight(0, lp, lp, lref, o with { KlCoefficient = 0, Kl = KlEstimator.K3 }, 0, out _), Is.EqualTo(0), "β = 0: no penalty");
        Assert.That(PolicyGradient.TokenWeight(0.5, lp, lp, double.NaN, o with { KlCoefficient = 0, Kl = KlEstimator.K3 }, 0, out _), Is.EqualTo(0.5).Within(1e-6), "β = 0 needs no reference: its log-probability is not read");

        // The behaviour weight p/q multiplies both terms, truncated at the cap.
        Assert.That(PolicyGradient.TokenWeight(0.5, -1, -1, -1, o, Math.Log(0.25), out _), Is.EqualTo(0.125).Within(1e-6));
        Assert.That(PolicyGradient.TokenWeight(0.5, -1, -1, -1, o, Math.Log(10), out _), Is.EqualTo(0.5 * 2.0).Within(1e-6), "p/q = 10 is truncated at 2");
        Assert.That(PolicyGradient.TokenWeight(0, lp, lp, lref, o, Math.Log(0.5), out _), Is.EqualTo(0.5 * 0.1 * Math.Log(2)).Within(1e-6), "the KL term too: an expectation under π");
    }

    [Test]
    public void LossAggregationNormalisesBySequenceByTokenOrByAConstant()
    {
        // Two sequences with 1 and 3 action tokens (position 0 never acts: nothing predicts it).
        PolicySequence Seq(int actions) => new(new int[actions + 1], [false, .. Enumerable.Repeat(true, actions)], new float[actions + 1], null);
        PolicySequence[] batch = [Seq(1), Seq(3)];
        Assert.That(PolicyGradient.Normalisers(batch, LossAggregation.SequenceMean, 0), Is.EqualTo(new[] { 1 / 2.0, 1 / 6.0 }).Within(1e-12), "GRPO: 1/(own tokens × sequences)");
        Assert.That(PolicyGradient.Normalisers(batch, LossAggregation.TokenMean, 0), Is.EqualTo(new[] { 1 / 4.0, 1 / 4.0 }).Within(1e-12), "DAPO: 1/(all tokens)");
        Assert.That(PolicyGradient.Normalisers(batch, LossAggregation.Constant, 10), Is.EqualTo(new[] { 1 / 20.0, 1 / 20.0 }).Within(1e-12), "Dr. GRPO: 1/(sequences × L)");
        Assert.That(PolicyGradient.Normalisers(batch, LossAggregation.Constant, 0), Is.EqualTo(new[] { 1 / 2.0, 1 / 2.0 }).Within(1e-12), "a length below 1 counts as 1");
        Assert.That(PolicyGradient.Normalisers([Seq(0), Seq(2)], LossAggregation.SequenceMean, 0), Is.EqualTo(new[] { 0, 1 / 4.0 }).Within(1e-12), "a sequence without actions weighs nothing");
        Assert.That(PolicyGradient.Normalisers([Seq(0)], LossAggregation.TokenMean, 0), Is.EqualTo(new[] { 0.0 }), "nor does a batch without any");
    }

    [Test]
    public void AnUpdateRefusesWhatItCannotUseAndAnEmptyBatchChangesNothing()
    {
        using var policy = HuggingFaceCheckpoint.Load(ModelDir, cpu, trainable: true);
        using var optimizer = new AdamWOptimizer(policy, weightDecay: 0.1f);  // an AdamW step on zero gradients would still decay the weights
        using var update = new PolicyGradient(policy, null, optimizer, new PolicyGradientOptions(LearningRate: 1e-2f, KlCoefficient: 0.1));
        float[] weights = policy.Weights.Buffer.ToFloatArray();
        Assert.That(update.Step([], 1), Is.EqualTo(new PolicyStepStats(0, 0, 0, 0)));

        int[] ids = tokenizer.Encode("\n    total += x\n");
        int n = ids.Length;
        var sequence = new PolicySequence(ids, [.. ids.Select((_, p) => p > 0)], new float[n], null);
        Assert.That(() => update.Step([sequence], 1, epochs: 0), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("epochs"));
        Assert.That(() => update.Step([sequence, sequence with { Acting = new bool[2] }], 1), Throws.ArgumentException.With.Message.Contains($"policy sequence 1: {n} tokens but 2 acting flags, {n} advantages"));
        Assert.That(() => update.Step([sequence with { Advantages = new float[2] }], 1), Throws.ArgumentException.With.Message.Contains($"{n} acting flags, 2 advantages"));
        Assert.That(() => update.Step([sequence with { OldLogProbs = new float[2] }], 1), Throws.ArgumentException.With.Message.Contains("2 old log-probabilities"));
        Assert.That(() => update.Step([sequence with { LogImportance = new float[2] }], 1), Throws.ArgumentException.With.Message.Contains("2 importance weights"));
        Assert.That(() => update.Step([sequence with { ReferenceLogProbs = new float[2] }], 1), Throws.ArgumentException.With.Message.Contains("2 reference log-probabilities"));
        Assert.That(() => update.Step([sequence, sequence with { ReferenceLogProbs = new float[n] }], 1), Throws.InvalidOperationException.With.Message.Contains("a KL penalty (β > 0) needs the reference model or the sequences' reference log-probabilities"), "one sequence without them is enough to need the model");
        Assert.That(policy.Weights.Buffer.ToFloatArray(), Is.EqualTo(weights), "neither the empty batch nor a refused one took a step");
    }

    [Test]
    public void RewardScalingAndTheOverlongPunishmentAreAsDefined()
    {
        double s = Math.Sqrt(2.0 / 3.0);
        Assert.That(Rewards.GroupAdvantages([1.0, 2.0, 3.0], 1.0), Is.EqualTo(new[] { -1.0, 0.0, 1.0 }).Within(1e-12), "no scaling");
        Assert.That(Rewards.GroupAdvantages([1.0, 2.0, 3.0], Rewards.Std([1.0, 2.0, 3.0])), Is.EqualTo(new[] { -1 / s, 0.0, 1 / s }).Within(1e-12), "the group's std");
        Assert.That(Rewards.GroupAdvantages([1.0, 2.0, 3.0], 2.0), Is.EqualTo(new[] { -0.5, 0.0, 0.5 }).Within(1e-12), "another scale, the batch's");
        Assert.That(Rewards.GroupAdvantages([0.5, 0.5], 0.0), Is.EqualTo(new[] { 0.0, 0.0 }));
        Assert.That(Rewards.Std([]), Is.EqualTo(0), "no values, no spread");
        Assert.That(Rewards.Std([1.0, 2.0, 3.0, 6.0]), Is.EqualTo(Math.Sqrt(3.5)).Within(1e-12), "about the mean 3: (4 + 1 + 0 + 9) / 4");
        Assert.That(RlvrTrainer.OverlongReward(1, 60, 100, 20, 1), Is.EqualTo(1), "before the buffer: untouched");
        Assert.That(RlvrTrainer.OverlongReward(1, 90, 100, 20, 1), Is.EqualTo(0.5).Within(1e-12), "10 of 20 buffer tokens: half the penalty");
        Assert.That(RlvrTrainer.OverlongReward(1, 100, 100, 20, 0.5), Is.EqualTo(0.5).Within(1e-12), "at the maximum: the whole penalty");
        Assert.That(RlvrTrainer.OverlongReward(1, 100, 100, 0, 1), Is.EqualTo(1), "buffer 0: off");
    }

    [Test]
    public void GivenReferenceLogProbsSpareTheReferencePassAndChangeNothing()
    {
        int[] ids = tokenizer.Encode("\n    total += x\n");
        var logProbs = Scorer.SequenceLogProbs(model, [ids])[0];
        PolicySequence Seq(float[]? reference) => new(ids, [.. ids.Select((_, p) => p > 0)], [.. ids.Select((_, p) => p % 2 == 0 ? 1f : -1f)], logProbs, ReferenceLogProbs: reference);
        var results = new List<(PolicyStepStats Stats, float[] Weights)>();
        foreach (var reference in new[] { null, logProbs })
        {
            using var policy = HuggingFaceCheckpoint.Load(ModelDir, cpu, trainable: true);
            using var referenceModel = HuggingFaceCheckpoint.Load(ModelDir, cpu);
            using var optimizer = new AdamWOptimizer(policy, weightDecay: 0f);
            using var update = new PolicyGradient(policy, referenceModel, optimizer, new PolicyGradientOptions(LearningRate: 1e-3f, KlCoefficient: 0.5));
            var stats = update.Step([Seq(reference)], 1, epochs: 2);
            results.Add((stats, policy.Weights.Buffer.ToFloatArray()));
        }

        Assert.That(results[0].Stats.ReferencePasses, Is.EqualTo(1));
        Assert.That(results[1].Stats.ReferencePasses, Is.EqualTo(0), "the E-step's scorer log-probabilities stand in for the reference pass");
        Assert.That(results[1].Stats.MeanKl, Is.EqualTo(results[0].Stats.MeanKl).Within(1e-6));
        Assert.That(results[1].Weights, Is.EqualTo(results[0].Weights).Within(1e-6), "the same update");
    }

    [TestCase(LossAggregation.SequenceMean)]
    [TestCase(LossAggregation.TokenMean)]
    public void MicroBatchesAddUpToTheWholeBatchsUpdate(LossAggregation aggregation)
    {
        // Five sequences of different lengths, mixed advantages, a KL penalty and two epochs (the
        // second one's ratios come from the first's old log-probabilities): the update in passes
        // of at most 2 sequences (2 + 2 + 1) is the whole batch's up to float summation order.
        string[] texts = ["\n    total += x\n", "\n    count = 0\n    return count\n", "\n    x = y\n", "\n    if a:\n        b = 1\n", "\n    pass\n"];
        var batch = texts.Select((text, i) =>
        {
            int[] ids = tokenizer.Encode(text);
            return new PolicySequence(ids, [.. ids.Select((_, p) => p > 0 && p % 3 != 1)], [.. ids.Select((_, p) => (float)Math.Sin(i + p))], OldLogProbs: null);
        }).ToList();
        var results = new List<(PolicyStepStats Stats, float[] Gradients, float[] Weights)>();
        foreach (int micro in new[] { 0, 2 })
        {
            using var policy = HuggingFaceCheckpoint.Load(ModelDir, cpu, trainable: true);
            using var reference = HuggingFaceCheckpoint.Load(ModelDir, cpu);
            using var optimizer = new AdamWOptimizer(policy, weightDecay: 0f);
            using var update = new PolicyGradient(policy, reference, optimizer, new PolicyGradientOptions(LearningRate: 1e-2f, KlCoefficient: 0.3, ClipLow: 0.02, ClipHigh: 0.02, Aggregation: aggregation, MicroBatch: micro));
            var stats = update.Step(batch, 1, epochs: 2);
            results.Add((stats, policy.Gradients!.Buffer.ToFloatArray(), policy.Weights.Buffer.ToFloatArray()));
        }

        var (whole, parts) = (results[0], results[1]);
        Assert.That(parts.Stats.ReferencePasses, Is.EqualTo(3), "one reference pass per micro-batch");
        Assert.That(parts.Stats.ActionTokens, Is.EqualTo(whole.Stats.ActionTokens));
        Assert.That(whole.Stats.ClippedFraction, Is.GreaterThan(0), "the second epoch clips, so the old log-probabilities matter");
        Assert.That(parts.Stats.ClippedFraction, Is.EqualTo(whole.Stats.ClippedFraction));
        Assert.That(parts.Stats.MeanKl, Is.EqualTo(whole.Stats.MeanKl).Within(1e-4 * whole.Stats.MeanKl));
        Assert.That(parts.Stats.GradNorm, Is.EqualTo(whole.Stats.GradNorm).Within(1e-4 * whole.Stats.GradNorm));

        // The second epoch's gradient (left in the store after its clip), norm-wise: float summation
        // order and the first step's rounding are ~1e-6 of it; a micro-batch left out, counted twice
        // or normalised by its own tokens is tens of per cent.
        double diff = 0, norm = 0;
        for (int i = 0; i < whole.Gradients.Length; i++)
        {
            diff += Math.Pow(parts.Gradients[i] - whole.Gradients[i], 2);
            norm += Math.Pow(whole.Gradients[i], 2);
        }

        Assert.That(Math.Sqrt(diff), Is.LessThan(1e-4 * Math.Sqrt(norm)), "micro-batches add up to the whole batch's gradient");

        // The weights two AdamW steps later: Adam divides by √v, which magnifies the rounding of the
        // smallest gradient entries, so the bound is looser than the gradient's.
        using var start = HuggingFaceCheckpoint.Load(ModelDir, cpu);
        float[] initial = start.Weights.Buffer.ToFloatArray();
        double moved = 0, differ = 0;
        for (int i = 0; i < initial.Length; i++)
        {
            moved = Math.Max(moved, Math.Abs(whole.Weights[i] - initial[i]));
            differ = Math.Max(differ, Math.Abs(parts.Weights[i] - whole.Weights[i]));
        }

        Assert.That(moved, Is.GreaterThan(1e-3), "the update moved the weights");
        Assert.That(differ, Is.LessThan(1e-2 * moved), "micro-batches give the same update");
    }

    [Test]
    public void LaterEpochsMoveTheRatioAndTheClipActs()
    {
        using var policy = HuggingFaceCheckpoint.Load(ModelDir, cpu, trainable: true);
        using var optimizer = new AdamWOptimizer(policy, weightDecay: 0f);
        using var update = new PolicyGradient(policy, null, optimizer, new PolicyGradientOptions(LearningRate: 2e-2f, KlCoefficient: 0, ClipLow: 0.05, ClipHigh: 0.05));
        int[] ids = tokenizer.Encode("\n    total += x\n    return total\n");
        var sequence = new PolicySequence(ids, [.. ids.Select((_, p) => p > 0)], [.. ids.Select(_ => 1f)], OldLogProbs: null);
        var one = update.Step([sequence], 1, epochs: 1);
        Assert.That(one.ClippedFraction, Is.Zero, "the first epoch's ratio is 1");
        Assert.That(one.ActionTokens, Is.EqualTo(ids.Length - 1));
        Assert.That((one.MeanKl, one.ReferencePasses), Is.EqualTo((0.0, 0)), "β = 0: no reference, no KL");
        var four = update.Step([sequence], 2, epochs: 4);
        Assert.That(four.ClipHighFraction, Is.GreaterThan(0), "by the fourth epoch some ratios passed 1 + ε_high");
        Assert.That(four.ClipLowFraction, Is.Zero, "no negative advantage, nothing clipped below");
    }

    [Test]
    public void AStepsFiguresAreTheMeanK3KlAndTheClipCountsOverItsActionTokens()
    {
        // One sequence with its old and reference log-probabilities set around the policy's own
        // (row p: log π(token p)): the old ones put each action token's ratio at e⁻¹ (A < 0, clipped
        // below), e (A > 0, clipped above) or 1 (not clipped), and the reference ones put r = log π_ref
        // − log π at 0.3·sin p, so the step's figures have hand-computable values.
        using var policy = HuggingFaceCheckpoint.Load(ModelDir, cpu, trainable: true);
        using var optimizer = new AdamWOptimizer(policy, weightDecay: 0f);
        using var update = new PolicyGradient(policy, null, optimizer, new PolicyGradientOptions(LearningRate: 1e-3f, KlCoefficient: 0.1, ClipLow: 0.2, ClipHigh: 0.2));
        int[] ids = tokenizer.Encode("\n    total += x\n    return total\n");
        float[] logProbs = Scorer.SequenceLogProbs(policy, [ids])[0];
        int n = ids.Length;
        bool[] acting = [.. ids.Select((_, p) => p > 0 && p % 4 != 3)];
        int[] kind = [.. ids.Select((_, p) => p % 4)];  // 0: ratio e⁻¹ with A < 0; 1: ratio e with A > 0; 2: ratio 1
        float[] old = [.. logProbs.Select((lp, p) => kind[p] switch { 0 => lp + 1, 1 => lp - 1, _ => lp })];
        float[] advantages = [.. kind.Select(k => k == 0 ? -1f : 1f)];
        float[] reference = [.. logProbs.Select((lp, p) => lp + (float)(0.3 * Math.Sin(p)))];
        double kl = 0;
        int tokens = 0, below = 0, above = 0;
        for (int p = 1; p < n; p++)
        {
            if (acting[p])
            {
                double r = reference[p] - logProbs[p];
                kl += Math.Exp(r) - r - 1;
                tokens++;
                below += kind[p] == 0 ? 1 : 0;
                above += kind[p] == 1 ? 1 : 0;
            }
        }

        var stats = update.Step([new PolicySequence(ids, acting, advantages, old, ReferenceLogProbs: reference)], 1);
        Assert.That(stats.ActionTokens, Is.EqualTo(tokens));
        Assert.That(stats.MeanKl, Is.EqualTo(kl / tokens).Within(1e-4 * kl / tokens), "the mean of e^r − r − 1 (float log-probabilities: 1e-4 of it)");
        Assert.That((below, above), Is.Not.EqualTo((0, 0)));
        Assert.That(stats.ClipLowFraction, Is.EqualTo((double)below / tokens).Within(1e-12));
        Assert.That(stats.ClipHighFraction, Is.EqualTo((double)above / tokens).Within(1e-12));
        Assert.That(stats.ClippedFraction, Is.EqualTo((double)(below + above) / tokens).Within(1e-12));
    }

    [Test]
    public void AnUpdateRaisesTheLogProbabilityOfAdvantagedTokensAndLowersTheOthers()
    {
        using var policy = HuggingFaceCheckpoint.Load(ModelDir, cpu, trainable: true);
        using var reference = HuggingFaceCheckpoint.Load(ModelDir, cpu);
        using var optimizer = new AdamWOptimizer(policy, weightDecay: 0f);
        using var update = new PolicyGradient(policy, reference, optimizer, new PolicyGradientOptions(LearningRate: 3e-3f, KlCoefficient: 0));
        int[] good = tokenizer.Encode("\n    total += x\n"), bad = tokenizer.Encode("\n    count = 0\n");
        var before = Scorer.SequenceLogProbs(policy, [good, bad]);
        PolicySequence Seq(int[] ids, float a) => new(ids, [.. ids.Select((_, p) => p > 0)], [.. ids.Select(_ => a)], before[ids == good ? 0 : 1]);
        for (int step = 1; step <= 3; step++)
        {
            update.Step([Seq(good, 1f), Seq(bad, -1f)], step);
        }

        var after = Scorer.SequenceLogProbs(policy, [good, bad]);
        Assert.That(after[0].Sum(), Is.GreaterThan(before[0].Sum() + 0.1));
        Assert.That(after[1].Sum(), Is.LessThan(before[1].Sum() - 0.1));
    }

    [Test]
    public void ANonFinitePolicyUpdateIsNotAppliedAndStopsTheRun()
    {
        using var policy = HuggingFaceCheckpoint.Load(ModelDir, cpu, trainable: true);
        using var reference = HuggingFaceCheckpoint.Load(ModelDir, cpu);
        using var optimizer = new AdamWOptimizer(policy, weightDecay: 0f);
        var log = new StringWriter();
        using var update = new PolicyGradient(policy, reference, optimizer, new PolicyGradientOptions(LearningRate: 3e-3f), new NonFiniteGuard(2, () => "ckpt/step-00000007", log));
        int[] ids = tokenizer.Encode("\n    total += x\n");
        var sequence = new PolicySequence(ids, [.. ids.Select((_, p) => p > 0)], [.. ids.Select(_ => float.NaN)], null);  // a NaN advantage poisons the gradient
        float[] weights = policy.Weights.Buffer.ToFloatArray();

        update.Step([sequence], 1);
        Assert.That(log.ToString(), Does.Contain("step 1: the gradient norm is NaN; the update was skipped (1 of the 2"));

        // Batch 2 of two epochs each is the optimizer's steps 3 and 4: the guard names the step a
        // resumed run would repeat, and AdamW's bias correction counts the same steps.
        var e = Assert.Throws<DivergenceException>(() => update.Step([sequence], 2, epochs: 2))!;
        Assert.That(log.ToString(), Does.Contain("step 3: the gradient norm is NaN; the update was skipped (2 of the 2"));
        Assert.That(e.Step, Is.EqualTo(4));
        Assert.That(e.Message, Does.Contain("the last good checkpoint is ckpt/step-00000007"));
        Assert.That(policy.Weights.Buffer.ToFloatArray(), Is.EqualTo(weights), "neither non-finite update touched the weights");
    }

    [TestCase(0.5, false, EStepBaseline.Group)]
    [TestCase(-0.5, true, EStepBaseline.Group)]
    [TestCase(-0.5, true, EStepBaseline.Elbo)]
    public void TheEStepLearnsToThinkWhereTheRewardPaysForIt(double thinkCost, bool thinkMore, EStepBaseline baseline)
    {
        // The RL of the E-step on its own, over six passes on the same eight traces: a cost per
        // rationale must teach the policy to think less, a bonus to think more. The line
        // log-likelihood part of r_t is noise here (the model is untrained), the ±0.5 nats are not;
        // an advantage of the wrong sign, credited to the wrong tokens or not applied fails one case.
        var traces = ProceduralTasks.Generate(8, heldOut: false, 11).Select(t => Trace.FromCode(t.TaskId, t.Code)).ToList();
        using var policy = HuggingFaceCheckpoint.Load(ModelDir, cpu, trainable: true);
        using var scorer = HuggingFaceCheckpoint.Load(ModelDir, cpu);
        var options = new EStepOptions(
            ThinkCost: thinkCost,
            Rollouts: new RolloutOptions(Group: 4, LatentMaxTokens: 6, ThinkFloor: 0.05),
            Update: new PolicyGradientOptions(LearningRate: 3e-3f, KlCoefficient: 0),
            TracesPerStep: 4,
            Passes: 6,
            Baseline: baseline,
            Candidates: 2);
        var result = new EStep(policy, scorer, tokenizer, options).Run(traces, seed: 5);
        Assert.That(result.Progress, Has.Count.EqualTo(EStep.Steps(traces.Count, options)));
        double first = result.Progress[0].ThinkRate, last = result.Progress.TakeLast(2).Average(p => p.ThinkRate);
        TestContext.Out.WriteLine($"c = {thinkCost}: think rate {first:P0} before the first update, {last:P0} in the last pass");
        Assert.That(first, Is.InRange(0.3, 0.7), "the untrained policy thinks about half the time");
        Assert.That(last, thinkMore ? Is.GreaterThan(0.8) : Is.LessThan(0.2));
        Assert.That(result.Candidates.Select((c, i) => c.Length == traces[i].Count), Is.All.True, "a candidate slot per boundary");
        Assert.That(result.Candidates.SelectMany(c => c).SelectMany(c => c), Is.Not.Empty.And.All.Not.Contains('\n'), "one-line rationales");
        Assert.That(result.Candidates.SelectMany(c => c).Select(c => c.Length), Is.All.LessThanOrEqualTo(2), "K = 2 per boundary at most");
        Assert.That(result.Candidates.SelectMany(c => c).Where(c => c.Length == 2).Select(c => c[0] != c[1]), Is.All.True, "distinct");
        Assert.That(result.Progress.Select(p => p.Update.ReferencePasses), Is.All.Zero, "the reward pass's scorer log-probabilities are the KL's reference");
    }

    [Test]
    public void AnEmRoundRaisesTheElboOfItsTracesAndResumesToTheSameResult()
    {
        var settings = new MidtrainSettings
        {
            Init = ModelDir,
            Tokenizer = TokenizerDir,
            Data = "procedural:12",
            Out = Path.Combine(work, "ra3"),
            Rounds = 1,
            Group = 2,
            LatentMaxTokens = 6,
            ThinkFloor = 0.5,
            TracesPerStep = 6,
            MStepSteps = 8,
            MStepBatch = 2,
            MStepSequenceLength = 128,
            MStepLearningRate = 3e-3f,
        };
        var round = new Midtrainer(settings, TextWriter.Null, false).Run().Single();
        Assert.That(round["log_z_after_mstep"]!.GetValue<double>(), Is.GreaterThan(round["log_z"]!.GetValue<double>() + 1), "the M-step raises log Z of the traces it trained on");
        Assert.That(round["program_same_rate"]!.GetValue<double>(), Is.EqualTo(1.0), "bootstrapped traces are their programs with comments");
        Assert.That(round["log_marginal_bound_per_line"]!.GetValue<double>(), Is.GreaterThanOrEqualTo(round["log_likelihood_bare_per_line"]!.GetValue<double>() * (1 + 1e-6)), "the bound sums the bare trace's term and more (float32 sums: 1e-6 relative)");
        Assert.That(round["candidate_rate"]!.GetValue<double>(), Is.GreaterThan(0));
        Assert.That(round["candidate_scoring_tokens_per_s"]!.GetValue<double>(), Is.GreaterThan(0).And.LessThan(1e7), "tokens scored over the scoring's wall time");
        Assert.That(round["code_ce_heldout"]!.GetValue<double>(), Is.LessThan(round["code_ce_heldout_init"]!.GetValue<double>()), "held-out code got likelier");
        string dir = Path.Combine(settings.Out, "round-1");
        var corpus = Data.Corpus.Read(Path.Combine(dir, "corpus.jsonl")).ToList();
        int maxLines = JsonFile.ReadObject(Path.Combine(settings.Out, Declared.ConfigFileName))["max-lines"]!.GetValue<int>();
        Assert.That(maxLines, Is.GreaterThanOrEqualTo(40), "max-lines 0 resolves to 40 lines of bytes' worth of tokens (the BPE packs several bytes a token)");
        var traces = TraceSet.Load(settings.Data, maxLines, settings.Seed).Train;
        Assert.That(corpus, Has.Count.EqualTo(traces.Count));
        for (int i = 0; i < traces.Count; i++)
        {
            // The procedural traces hold no comments of their own, so every comment line was inserted.
            var uncommented = string.Concat(corpus[i].Split('\n').SkipLast(1).Where(l => !l.TrimStart().StartsWith('#')).Select(l => l + "\n"));
            Assert.That(uncommented, Is.EqualTo(traces[i].Render()), $"trace {i}: the bootstrapped text is the trace with comment lines inserted");
        }

        // A kill after the E-step (during inference or before the M-step's first checkpoint): the resumed run ends where the uninterrupted one did.
        byte[] weights = File.ReadAllBytes(Path.Combine(settings.Out, "final", "model.safetensors"));
        foreach (string path in new[] { Path.Combine(dir, "summary.json"), Path.Combine(dir, "inference.json"), Path.Combine(dir, "corpus.jsonl"), Path.Combine(settings.Out, "metrics.jsonl") })
        {
            File.Delete(path);
        }

        Directory.Delete(Path.Combine(dir, "mstep"), recursive: true);
        Directory.Delete(Path.Combine(settings.Out, "final"), recursive: true);
        var resumed = new Midtrainer(settings, TextWriter.Null, false).Run().Single();
        foreach (string key in new[] { "log_z", "log_z_after_mstep", "think_rate", "code_ce_heldout", "mstep_loss" })
        {
            Assert.That(resumed[key]!.GetValue<double>(), Is.EqualTo(round[key]!.GetValue<double>()), key);
        }

        Assert.That(File.ReadAllBytes(Path.Combine(settings.Out, "final", "model.safetensors")), Is.EqualTo(weights));
        Assert.Throws<InvalidOperationException>(() => new Midtrainer(settings with { ThinkCost = 0.2 }, TextWriter.Null, false).Run(), "other settings in the same folder are refused");
    }

    [Test]
    public void NtpSpendsTheSameMStepTokensOnTheRawTraces()
    {
        var settings = new MidtrainSettings { Method = "ntp", Init = ModelDir, Tokenizer = TokenizerDir, Data = "procedural:12", Out = Path.Combine(work, "ntp"), Rounds = 1, MStepSteps = 4, MStepBatch = 2, MStepSequenceLength = 128 };
        var round = new Midtrainer(settings, TextWriter.Null, false).Run().Single();
        Assert.That(round["mstep_tokens"]!.GetValue<long>(), Is.EqualTo(4L * 2 * 128));
        int maxLines = JsonFile.ReadObject(Path.Combine(settings.Out, Declared.ConfigFileName))["max-lines"]!.GetValue<int>();
        Assert.That(maxLines, Is.GreaterThanOrEqualTo(40), "max-lines 0 resolves to 40 lines of bytes' worth of tokens (the BPE packs several bytes a token)");
        var traces = TraceSet.Load(settings.Data, maxLines, settings.Seed).Train;
        Assert.That(Data.Corpus.Read(Path.Combine(settings.Out, "round-1", "corpus.jsonl")), Is.EqualTo(traces.Select(t => t.Render())));
    }

    [Test]
    public async Task PartialCreditCountsTheAssertsThatPass()
    {
        var problem = new Problem("p", "def f(x):\n", CompletionMode.ContinuesPrompt, null, string.Empty, "assert f(1) == 2\nassert f(2) == 4\nassert f(3) == 7\nassert f(0) == 1\n", null, "plain", null);
        using var sandbox = Sandbox.Sandbox.Create();
        string half = "    return 2 * x\n";
        var partial = await Task.Run(() => sandbox.Run(RlvrTrainer.TestProgram(problem, half, partial: true)));
        Assert.That(RlvrTrainer.Reward(partial, partial: true), Is.EqualTo(0.5));
        Assert.That(RlvrTrainer.Reward(partial, partial: false), Is.EqualTo(0.0));
        var binary = await Task.Run(() => sandbox.Run(RlvrTrainer.TestProgram(problem, half, partial: false)));
        Assert.That(binary.Outcome, Is.EqualTo(RunOutcome.Failed));
        var crash = await Task.Run(() => sandbox.Run(RlvrTrainer.TestProgram(problem, "    import os\n    os._exit(0)\n", partial: true)));
        Assert.That(RlvrTrainer.Reward(crash, partial: true), Is.EqualTo(0.0), "a program that never reaches the count earns nothing");
    }

    [Test]
    public void RlvrStepsWriteTheirCurvesAndResumeExactly()
    {
        // The procedural tasks would give the untrained model reward 0 everywhere, and nothing here would be tested.
        string tasks = TinyRuns.WriteHalfSolvableProblems(Path.Combine(work, "parity.jsonl")), held = tasks;
        var s = new RlvrSettings
        {
            Init = ModelDir,
            Tokenizer = TokenizerDir,
            Problems = tasks,
            EvalProblems = held,
            Out = Path.Combine(work, "rlvr-a"),
            Steps = 3,
            PromptsPerStep = 2,
            Group = 2,
            MaxNewTokens = 16,
            EvalEvery = 2,
            EvalSamples = 2,
            EvalLimit = 3,
            SaveEvery = 1,
            LearningRate = 1e-3f,
        };
        new RlvrTrainer(s, TextWriter.Null, false).Run();
        var a = File.ReadAllLines(Path.Combine(s.Out, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.That(a.Select(m => m["step"]!.GetValue<int>()), Is.EqualTo(new[] { 0, 1, 2, 3 }));
        Assert.That(a.Where(m => m.ContainsKey("eval_pass_at_1")).Select(m => m["step"]!.GetValue<int>()), Is.EqualTo(new[] { 0, 2, 3 }));
        Assert.That(a.Skip(1).Select(m => m["reward"]!.GetValue<double>()), Is.All.InRange(0.0, 1.0));
        Assert.That(a.Skip(1).Select(m => m["reward"]!.GetValue<double>()), Has.Some.InRange(0.01, 0.99), "some group had both a pass and a fail");
        Assert.That(a.Skip(1).Select(m => m["grad_norm"]!.GetValue<double>()), Has.Some.GreaterThan(0), "so an update moved the policy");
        Assert.That(a.Skip(2).Select(m => m["kl"]!.GetValue<double>()), Has.Some.GreaterThan(0), "away from the reference");

        var b = s with { Out = Path.Combine(work, "rlvr-b") };
        new RlvrTrainer(b with { StopAfter = 2 }, TextWriter.Null, false).Run();
        new RlvrTrainer(b, TextWriter.Null, false).Run();
        var resumed = File.ReadAllLines(Path.Combine(b.Out, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.That(resumed.Select(m => m["reward"]?.GetValue<double>()), Is.EqualTo(a.Select(m => m["reward"]?.GetValue<double>())));
        Assert.That(resumed.Select(m => m["kl"]?.GetValue<double>()), Is.EqualTo(a.Select(m => m["kl"]?.GetValue<double>())));
        Assert.That(File.ReadAllBytes(Path.Combine(b.Out, "final", "model.safetensors")), Is.EqualTo(File.ReadAllBytes(Path.Combine(s.Out, "final", "model.safetensors"))));
    }

    [Test]
    public void RlvrWithTheDapoKnobsLogsItsStatisticsAndResumesExactly()
    {
        string tasks = TinyRuns.WriteHalfSolvableProblems(Path.Combine(work, "parity-dapo.jsonl"));
        var s = new RlvrSettings
        {
            Init = ModelDir,
            Tokenizer = TokenizerDir,
            Problems = tasks,
            EvalProblems = tasks,
            Out = Path.Combine(work, "rlvr-dapo-a"),
            Steps = 3,
            PromptsPerStep = 2,
            Group = 3,
            MaxNewTokens = 12,
            EvalEvery = 3,
            EvalSamples = 2,
            EvalLimit = 2,
            SaveEvery = 1,
            LearningRate = 1e-3f,
            DynamicSampling = true,
            MaxRefills = 2,
            LossType = "dr_grpo",
            ScaleRewards = "batch",
            ClipHigh = 0.28,
            KlEstimatorName = "k3",
            Epochs = 2,
            OverlongBuffer = 4,
            MaskTruncated = true,
            Slots = 4,
        };
        new RlvrTrainer(s, TextWriter.Null, false).Run();
        var a = File.ReadAllLines(Path.Combine(s.Out, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        foreach (var m in a.Skip(1))
        {
            int generated = m["groups_generated"]!.GetValue<int>(), used = m["groups_used"]!.GetValue<int>();
            Assert.That(generated, Is.InRange(2, 6), "2 prompts a round, at most 2 refills");
            Assert.That(used, Is.LessThanOrEqualTo(2));
            Assert.That(m["zero_std_fraction"]!.GetValue<double>(), Is.EqualTo((generated - used) / (double)generated).Within(1e-12).Or.LessThan((generated - used) / (double)generated), "dropped groups are zero-std ones");
            Assert.That(m["completion_length_max"]!.GetValue<int>(), Is.LessThanOrEqualTo(12));
            Assert.That(m["entropy"]!.GetValue<double>(), Is.GreaterThan(0));
            Assert.That(m["truncated_fraction"]!.GetValue<double>(), Is.InRange(0.0, 1.0));
            if (m["skipped"] is null)
            {
                Assert.That(m["clip_region"]!.GetValue<double>(), Is.EqualTo(m["clip_low"]!.GetValue<double>() + m["clip_high"]!.GetValue<double>()).Within(1e-12));
            }
        }

        var b = s with { Out = Path.Combine(work, "rlvr-dapo-b") };
        new RlvrTrainer(b with { StopAfter = 1 }, TextWriter.Null, false).Run();
        new RlvrTrainer(b, TextWriter.Null, false).Run();
        var resumed = File.ReadAllLines(Path.Combine(b.Out, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.That(resumed.Select(m => m.ToJsonString().Replace("generation_tokens_per_s", string.Empty, StringComparison.Ordinal)).Count(), Is.EqualTo(a.Count));
        Assert.That(resumed.Select(m => m["reward"]?.GetValue<double>()), Is.EqualTo(a.Select(m => m["reward"]?.GetValue<double>())));
        Assert.That(File.ReadAllBytes(Path.Combine(b.Out, "final", "model.safetensors")), Is.EqualTo(File.ReadAllBytes(Path.Combine(s.Out, "final", "model.safetensors"))));
    }
}
