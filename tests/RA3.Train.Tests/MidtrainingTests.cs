using NUnit.Framework;
using RA3.Kernels.Cpu;
using RA3.Model.Inference;
using RA3.Model.Scoring;
using RA3.Model.Tokenizers;
using RA3.Testing;
using RA3.Train.Evaluation;
using RA3.Train.Midtraining;
using RA3.Train.Sandbox;
using static TorchSharp.torch;

namespace RA3.Train.Tests;

/// <summary>
/// The pieces of RA3 mid-training on hand-computed cases and against an independent model:
/// traces, where a rationale may stand and rationale insertion (and that the result is still the
/// same program, checked in the sandbox), the E-step reward (horizon k, the span, the cost c, lines
/// taken given the decision), its exploration weights and advantages, the temporal-ELBO inference
/// against brute force (with K candidates, the posterior baseline and the marginal-likelihood
/// bound), and candidate scoring against a TorchSharp float64 model.
/// </summary>
[Order(1)]  // before the end-to-end fixtures: its hand-computed checks fail a defect in seconds, where mutation testing stops a run
public sealed class MidtrainingTests
{
    private CpuBackend cpu = null!;
    private RA3.Model.Transformer model = null!;
    private TextTokenizer tokenizer = null!;

    /// <summary>The Hugging Face llama fixture and its BPE tokenizer, for the tests that score with a model.</summary>
    [OneTimeSetUp]
    public void Open()
    {
        cpu = new CpuBackend();
        model = Scorer.LoadModel(Fixtures.SharedPath("fixtures", "hf", "llama-tiny"), cpu);
        tokenizer = TokenizerLoader.Load(Fixtures.SharedPath("fixtures", "hf", "tokenizer-bpe512"));
    }

    [OneTimeTearDown]
    public void Close()
    {
        model.Dispose();
        cpu.Dispose();
    }

    [Test]
    public void SplitsLinesAndInsertsRationalesAsIndentedComments()
    {
        var trace = Trace.FromCode("f", "def f(x):\r\n    y = x\n\n    return y\n");
        Assert.That(trace.Lines, Is.EqualTo(new[] { "def f(x):", "    y = x", string.Empty, "    return y" }));
        Assert.That(trace.IndentBefore(3), Is.EqualTo("    "), "a blank line takes the next code line's indentation");
        string text = trace.Render(new Dictionary<int, string> { [1] = "entry point", [2] = "copy x\nignored second line", [3] = "# give it back " });
        Assert.That(text, Is.EqualTo("# entry point\ndef f(x):\n    # copy x\n    y = x\n    # give it back\n\n    return y\n"));
        Assert.That(trace.Render(), Is.EqualTo("def f(x):\n    y = x\n\n    return y\n"));
    }

    [Test]
    public async Task TracesWithARationaleAtEveryAllowedLineAreTheSameProgram()
    {
        // Every HumanEval solution with a comment before every line that allows one: the syntax tree
        // is the bare one's; a comment inside a multi-line string changes the program, one after a
        // backslash continuation breaks it, and a fragment cannot be checked.
        var problems = ProblemSetLoader.Load(Fixtures.SharedPath("data", "humaneval", "HumanEval.jsonl.gz")).Problems;
        var traces = problems.Select(p => Trace.FromCode(p.TaskId, p.Prompt + p.CanonicalSolution)).ToList();
        var pairs = traces.Select(t => (t.Render(), t.Render(Enumerable.Range(1, t.Count).Where(t.RationaleAllowed).ToDictionary(i => i, i => $"step {i}: what comes next")))).ToList();
        var inString = Trace.FromCode("s", "x = '''a\nb'''\ny = 1\n");
        var continued = Trace.FromCode("c", "x = 1 + \\\n    2\n");
        var fragment = Trace.FromCode("f", "    return y\n");
        pairs.Add((inString.Render(), inString.Render(new Dictionary<int, string> { [2] = "inside" })));
        pairs.Add((continued.Render(), continued.Render(new Dictionary<int, string> { [2] = "after the backslash" })));
        pairs.Add((fragment.Render(), fragment.Render(new Dictionary<int, string> { [1] = "a fragment" })));
        using var sandbox = Sandbox.Sandbox.Create();
        using var pool = new SandboxPool(sandbox);
        var checks = await SyntaxCheck.CompareAsync(pool, pairs);
        Assert.That(checks.Take(problems.Count), Is.All.EqualTo(ProgramCheck.Same));
        Assert.That(checks.Skip(problems.Count), Is.EqualTo(new[] { ProgramCheck.Changed, ProgramCheck.Unparsable, ProgramCheck.Unchecked }));
        Assert.That(inString.RationaleAllowed(2) || continued.RationaleAllowed(2), Is.False, "the scan keeps rationales out of both");
    }

    [Test]
    public void RationalesStandOnlyWhereALogicalLineOfCodeStarts()
    {
        var trace = Trace.FromCode("t", string.Join('\n',
            "def f(xs):",                  // 1
            "    s = '''doc",              // 2
            "    # not a comment'''",      // 3 inside the string
            "    t = (1,",                 // 4
            "         2)",                 // 5 inside brackets
            "",                            // 6 blank
            "    u = 'a\\'b' + \\",         // 7 a quote escaped, then a continuation
            "        'c'",                 // 8 continued
            "    v = \"#\" # (",           // 9 a '#' in a string, a bracket in a comment
            "    return v"));              // 10
        bool[] allowed = [.. Enumerable.Range(1, trace.Count).Select(trace.RationaleAllowed)];
        Assert.That(allowed, Is.EqualTo(new[] { true, true, false, true, false, false, true, false, true, true }));
    }

    [Test]
    public void StepRewardsSumTheHorizonOrTheSpanAndPriceAThought()
    {
        double[] lines = [-1.0, -2.0, -3.0, -4.0];
        bool[] thinks = [false, true, false, true];
        Assert.That(Rewards.Step(lines, thinks, 1, 0.05), Is.EqualTo(new[] { -1.0, -2.05, -3.0, -4.05 }).Within(1e-12));
        Assert.That(Rewards.Step(lines, thinks, 2, 0.05), Is.EqualTo(new[] { -3.0, -5.05, -7.0, -4.05 }).Within(1e-12), "k past the end sums what is left");
        Assert.That(Rewards.Step(lines, thinks, 0, 0.05), Is.EqualTo(new[] { -1.0, -5.05, -3.0, -4.05 }).Within(1e-12), "k = 0: the span, up to the next think");
        Assert.That(Rewards.Step(lines, thinks, 1, 0.05, [0, -7, 0, -1.5]), Is.EqualTo(new[] { -1.0, -9.05, -3.0, -5.55 }).Within(1e-12), "the rationale's own log-probability, where it is in the prior");
        Assert.That(() => Rewards.Step(lines, thinks, -1, 0.05), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("k"));
        Assert.That(() => Rewards.Step(lines, thinks[..3], 1, 0.05), Throws.ArgumentException.With.Message.Contains("4 lines need as many think flags and rationale log-probabilities, got 3 and 0"));
        Assert.That(() => Rewards.Step(lines, thinks, 1, 0.05, [0, -7]), Throws.ArgumentException.With.Message.Contains("got 4 and 2"));
    }

    [Test]
    public void RationaleLogProbsSumEachCommentIntoTheLineItPrecedes()
    {
        // Tokens: lead, a two-token comment, line 0 (two tokens), a one-token comment, line 1, line 2 (no comment).
        var trace = Trace.FromCode("t", "a\nb\nc\n");
        int r = LineTokens.RationaleOwner;
        var rollout = new Rollout(trace, [9, 5, 5, 1, 2, 5, 3, 4], [LineTokens.PrefixOwner, r, r, 0, 0, r, 1, 2], new int[8], new float[8], new float[8], [.. Enumerable.Repeat(-1, 8)], [null, null, null]);
        float[] logProbs = [-100f, -1f, -0.5f, -2f, -3f, -0.25f, -4f, -5f];
        Assert.That(Rewards.RationaleLogProbs(rollout, logProbs), Is.EqualTo(new[] { -1.5, -0.25, 0.0 }).Within(1e-12), "each comment once, to the next code line; none before line 2");
    }

    [Test]
    public void AdvantagesArePooledNotBlownUpPerBoundary()
    {
        // Boundary 1: rewards differ by 1e-6 (an earlier rationale changed the context a little);
        // boundary 2: by 2 nats. Per-boundary scaling would give boundary 1 advantages of ±1.
        double[][] rewards = [[-1.0, -3.0], [-1.000001, -1.0]];
        var a = Rewards.Advantages(rewards, default, normalise: true);
        double scale = Math.Sqrt(((0.0000005 * 0.0000005 * 2) + (1.0 * 1.0 * 2)) / 4);
        Assert.That(a[0], Is.EqualTo(new[] { 0.0000005 / scale, -1.0 / scale }).Within(1e-9));
        Assert.That(a[1], Is.EqualTo(new[] { -0.0000005 / scale, 1.0 / scale }).Within(1e-9));
        Assert.That(Math.Abs(a[0][0]), Is.LessThan(1e-5), "a context difference stays a small advantage");
        Assert.That(Rewards.Advantages(rewards, default, normalise: false)[1], Is.EqualTo(new[] { -0.0000005, 1.0 }).Within(1e-12));
        Assert.That(Rewards.Advantages(rewards, [-2.0, -1.5], normalise: false)[0], Is.EqualTo(new[] { 1.0, -1.5 }).Within(1e-12), "a given baseline replaces the group mean");
        Assert.That(Rewards.Advantages([[0.5, 0.5], [0.5, 0.5]], default, normalise: true)[0], Is.EqualTo(new[] { 0.0, 0.0 }), "equal rewards: no advantage, no division by zero");
        Assert.That(Rewards.Advantages([], default, normalise: true), Is.Empty, "no rollouts");
    }

    [Test]
    public void LinesTakenGivenTheDecisionLoseTheNoCommentMass()
    {
        // Tokens: lead, line 0 (act decided at its first token: the opener had probability 0.2), line 1 (no decision).
        var trace = Trace.FromCode("t", "a\nb\n");
        var rollout = new Rollout(trace, [9, 1, 2, 3], [-1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [-1, 7, -1, -1], [null, null]);
        float[] logProbs = [0f, -0.5f, -0.25f, -2f], opener = [0f, (float)Math.Log(0.2), 0f, 0f];
        Assert.That(Rewards.LineLogProbs(rollout, logProbs, opener, decisionFree: false), Is.EqualTo(new[] { -0.75, -2.0 }).Within(1e-6));
        Assert.That(Rewards.LineLogProbs(rollout, logProbs, opener, decisionFree: true), Is.EqualTo(new[] { -0.75 - Math.Log(0.8), -2.0 }).Within(1e-6));
        Assert.That(Rewards.LineLogProbs(rollout with { ThinkIds = [-1, 0, -1, -1] }, logProbs, opener, decisionFree: true), Is.EqualTo(new[] { -0.75 - Math.Log(0.8), -2.0 }).Within(1e-6), "token 0 can be the opener");
        Assert.That(Rewards.Log1MinusExp(Math.Log(1e-9)), Is.EqualTo(-1e-9).Within(1e-18), "accurate for a rare opener");
        Assert.That(Rewards.Log1MinusExp(-50), Is.EqualTo(-Math.Exp(-50)).Within(1e-30), "where 1 − eˣ rounds to 1");
        Assert.That(Rewards.Log1MinusExp(-1e-9), Is.EqualTo(Math.Log(1e-9)).Within(1e-6), "and for a likely one");
        Assert.That(Rewards.Log1MinusExp(-1e-20), Is.EqualTo(Math.Log(1e-20)).Within(1e-9), "where eˣ rounds to 1");
        Assert.That(Rewards.Log1MinusExp(0), Is.EqualTo(double.NegativeInfinity), "a certain opener");
        Assert.That(Rewards.Log1MinusExp(-0.5), Is.EqualTo(Math.Log(1 - Math.Exp(-0.5))).Within(1e-15), "between −log 2 and the rounding edge, where eˣ − 1 is computed");
    }

    [Test]
    public void ExplorationIsDrawnFromTheMixtureAndWeighedByPOverQ()
    {
        var (q, think) = RolloutSampler.Explore(0.02, 0.1, thinks: true);
        Assert.That(q, Is.EqualTo(0.068).Within(1e-12), "q(think) = (1 − ε)·p + ε/2");
        Assert.That(Math.Exp(think), Is.EqualTo(0.02 / 0.068).Within(1e-12));
        var (qa, act) = RolloutSampler.Explore(0.02, 0.1, thinks: false);
        Assert.That(qa, Is.EqualTo(0.932).Within(1e-12));
        Assert.That(Math.Exp(act), Is.EqualTo(0.98 / 0.932).Within(1e-12));
        Assert.That(RolloutSampler.Explore(0.3, 0, thinks: true).LogImportance, Is.EqualTo(0), "no floor: on-policy");
    }

    [Test]
    public void InferenceMatchesBruteForceOnTwoLines()
    {
        // seg[j, t] for j = 0..2, t = 0..1 ([3, 2] row-major); seg[2, 0] is never read.
        float[] seg = [-4f, -3f, -1f, -2.5f, 99f, -0.5f];
        var options = new ElboOptions(Alpha: 0.8, ThinkCost: 0.05);
        double act = Math.Log(0.8), think = Math.Log(0.2) - 0.05;
        double aa = act + seg[0] + act + seg[1], at = act + seg[0] + think + seg[5];
        double ta = think + seg[2] + act + seg[3], tt = think + seg[2] + think + seg[5];
        double[] all = [aa, at, ta, tt];
        double max = all.Max(), z = max + Math.Log(all.Sum(v => Math.Exp(v - max)));
        var r = SegmentationInference.Infer(cpu, [new ScoredTrace(seg, [0f, 0f], 2)], options)[0];
        Assert.That(r.LogZ, Is.EqualTo(z).Within(1e-5));
        Assert.That(r.ThinkPosterior[0], Is.EqualTo((Math.Exp(ta - z) + Math.Exp(tt - z))).Within(1e-5));
        Assert.That(r.ThinkPosterior[1], Is.EqualTo((Math.Exp(at - z) + Math.Exp(tt - z))).Within(1e-5));
        int best = Array.IndexOf(all, all.Max());
        var expected = best switch { 0 => new int[0], 1 => [2], 2 => [1], _ => [1, 2] };
        Assert.That(r.KeptBoundaries, Is.EqualTo(expected));
    }

    [TestCase(-1.5f)]
    [TestCase(8f)]  // boundary 2's second candidate pays for itself: the MAP's state index maps back to (2, 1)
    public void InferenceWithKCandidatesMatchesBruteForceAndKeepsTheChosenText(float secondAtTwo)
    {
        // Two lines, two candidates at each boundary: seg [1 + 2·2, 2], rows s = 0, (1, 0), (1, 1), (2, 0), (2, 1).
        float[] seg = [-4f, -3f, -1f, -2.5f, -2f, -0.2f, 99f, -0.5f, 99f, secondAtTwo];
        float[] rationale = [-3f, -1f, -2f, -6f];
        var options = new ElboOptions(Alpha: 0.6, ThinkCost: 0.05, UseRationaleLogProb: true);
        double act = Math.Log(0.6), think = Math.Log(0.4) - 0.05;
        var all = new List<(double W, (int, int)[] Kept)>();
        for (int d0 = 0; d0 <= 2; d0++)
        {
            for (int d1 = 0; d1 <= 2; d1++)
            {
                int s0 = d0 == 0 ? 0 : d0, s1 = d1 == 0 ? s0 : 2 + d1;  // state index 1 + (j − 1)·K + k
                double w = (d0 == 0 ? act : think + rationale[d0 - 1]) + seg[(s0 * 2) + 0] + (d1 == 0 ? act : think + rationale[2 + d1 - 1]) + seg[(s1 * 2) + 1];
                all.Add((w, [.. new[] { (1, d0 - 1), (2, d1 - 1) }.Where(x => x.Item2 >= 0)]));
            }
        }

        double max = all.Max(x => x.W), z = max + Math.Log(all.Sum(x => Math.Exp(x.W - max)));
        var r = SegmentationInference.Infer(cpu, [new ScoredTrace(seg, rationale, 2, 2)], options)[0];
        Assert.That(r.LogZ, Is.EqualTo(z).Within(1e-5));
        Assert.That(r.Kept, Is.EqualTo(all.MaxBy(x => x.W).Kept));
        Assert.That(r.Kept.Contains((2, 1)), Is.EqualTo(secondAtTwo > 0));
        IReadOnlyList<IReadOnlyList<string>> texts = [["a0", "a1"], ["b0", "b1"]];
        Assert.That(r.KeptRationales(texts).Values, Is.EqualTo(r.Kept.Select(k => texts[k.Boundary - 1][k.Candidate])));

        // log Σ_z p(x, z): no α, no c, the rationales' own log-probabilities.
        double[] joint = [.. all.Select((x, i) =>
        {
            int d0 = i / 3, d1 = i % 3, s0 = d0, s1 = d1 == 0 ? s0 : 2 + d1;
            return (d0 == 0 ? 0 : rationale[d0 - 1]) + seg[(s0 * 2) + 0] + (d1 == 0 ? 0 : rationale[2 + d1 - 1]) + seg[(s1 * 2) + 1];
        })];
        double jm = joint.Max();
        Assert.That(SegmentationInference.LogMarginalBound(cpu, [new ScoredTrace(seg, rationale, 2, 2)])[0], Is.EqualTo(jm + Math.Log(joint.Sum(x => Math.Exp(x - jm)))).Within(1e-5));
    }

    [TestCase(1, false)]
    [TestCase(2, true)]
    public void ThePosteriorBaselineIsTheExpectedRewardOverEverySegmentation(int k, bool withRationale)
    {
        // Three lines, two candidates per boundary (one missing at boundary 3): E_posterior[r_t] by
        // enumerating the 3^3 assignments, against the baseline read from the DP's marginals.
        const int n = 3, kc = 2;
        var rng = new Random(5);
        float[] seg = [.. Enumerable.Range(0, ((n * kc) + 1) * n).Select(_ => (float)(-0.2 - (3 * rng.NextDouble())))];
        float[] rationale = [.. Enumerable.Range(0, n * kc).Select(_ => (float)(-1 - (2 * rng.NextDouble())))];
        for (int t = 0; t < n; t++)
        {
            seg[((1 + (2 * kc) + 1) * n) + t] = float.NegativeInfinity;  // boundary 3 has one candidate
        }

        rationale[(2 * kc) + 1] = float.NegativeInfinity;  // as CandidateScorer fills a missing candidate

        var options = new ElboOptions(Alpha: 0.5, ThinkCost: 0.3, UseRationaleLogProb: withRationale);
        var scored = new ScoredTrace(seg, rationale, n, kc);
        var segmentation = SegmentationInference.Infer(cpu, [scored], options)[0];
        var baseline = Rewards.PosteriorBaseline(scored, segmentation, k, 0.3, withRationale);
        Assert.That(() => Rewards.PosteriorBaseline(scored, segmentation, 0, 0.3, withRationale), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("k"), "the horizon is lines, at least one");

        double logThink = Math.Log(0.5) - 0.3, logAct = Math.Log(0.5);
        var weights = new List<double>();
        var rewards = new List<double[]>();
        for (int code = 0; code < 27; code++)
        {
            int[] d = [code % 3, code / 3 % 3, code / 9];
            double w = 0;
            var state = new int[n];
            var lines = new double[n];
            for (int t = 0, s = 0; t < n; t++)
            {
                s = d[t] > 0 ? 1 + (t * kc) + d[t] - 1 : s;
                state[t] = s;
                lines[t] = seg[(s * n) + t];
                w += (d[t] > 0 ? logThink + (withRationale ? rationale[(t * kc) + d[t] - 1] : 0) : logAct) + lines[t];
            }

            weights.Add(w);
            rewards.Add([.. Enumerable.Range(0, n).Select(t => Enumerable.Range(t, Math.Min(k, n - t)).Sum(l => lines[l]) - (d[t] > 0 ? 0.3 - (withRationale ? rationale[(t * kc) + d[t] - 1] : 0) : 0))]);
        }

        double m = weights.Where(double.IsFinite).Max(), z = m + Math.Log(weights.Sum(w => Math.Exp(w - m)));
        for (int t = 0; t < n; t++)
        {
            double expected = weights.Select((w, i) => double.IsFinite(w) ? Math.Exp(w - z) * rewards[i][t] : 0).Sum();
            Assert.That(baseline[t], Is.EqualTo(expected).Within(1e-4), $"boundary {t + 1}");
        }
    }

    [Test]
    public void CandidateScoresAreTheLineSumsOfAnIndependentModel()
    {
        // K = 2 at boundary 2, one at boundaries 3 and 4, none at 1.
        var trace = Trace.FromCode("t", "def f(x):\n    y = x + 1\n\n    return y\n");
        IReadOnlyList<IReadOnlyList<string>> candidates = [[], ["add one", "increment"], ["blank"], ["return it"]];
        var scores = CandidateScorer.Score(model, tokenizer, trace, candidates);
        int n = trace.Count, k = 2;
        Assert.That(scores.Joint.Candidates, Is.EqualTo(k));
        for (int j = 0; j <= n; j++)
        {
            for (int c = 0; c < (j == 0 ? 1 : k); c++)
            {
                int s = j == 0 ? 0 : 1 + ((j - 1) * k) + c;
                if (j > 0 && c >= candidates[j - 1].Count)
                {
                    Assert.That(scores.Joint.Seg.Skip(s * n).Take(n), Is.All.EqualTo(float.NegativeInfinity), $"boundary {j} has no candidate {c}");
                    continue;
                }

                var rationales = j == 0 ? new Dictionary<int, string>() : new Dictionary<int, string> { [j] = candidates[j - 1][c] };
                var pieces = ReferencePieceLogProbs(trace, rationales);
                foreach (var (line, logProb, _) in pieces)
                {
                    if (line > 0 && line >= j)
                    {
                        Assert.That(scores.Joint.Seg[(s * n) + line - 1], Is.EqualTo(logProb).Within(1e-3), $"seg[{s}, line {line}]");
                    }
                    else if (line == 0)
                    {
                        Assert.That(scores.Joint.RationaleLogProbs[s - 1], Is.EqualTo(logProb).Within(1e-3), $"rationale {s}");
                    }
                }

                // Decision-free: each line where a comment could have started is taken given none did.
                var tokens = LineTokens.Of(tokenizer, trace, rationales);
                var decisions = LineTokens.Decisions(tokenizer, trace, rationales, tokens);
                Assert.That(decisions.Select(d => d.Boundary), Does.Not.Contain(3), "a blank line is no decision");
                Assert.That(decisions.Select(d => tokenizer.Decode([d.ThinkToken])), Has.All.Contains("#"), "the decision's think token opens the comment");
                var opener = ReferenceLogProbsAt(tokens, [.. decisions.Select(d => (d.Index, d.ThinkToken))]);
                for (int t = 0; t < n; t++)
                {
                    double correction = decisions.Select((d, i) => (d, i)).Where(x => tokens.Owner[x.d.Index] == t).Sum(x => -Math.Log(1 - Math.Exp(opener[x.i])));
                    if (float.IsFinite(scores.Joint.Seg[(s * n) + t]))
                    {
                        Assert.That(scores.DecisionFree.Seg[(s * n) + t], Is.EqualTo(scores.Joint.Seg[(s * n) + t] + correction).Within(1e-3), $"decision-free seg[{s}, line {t + 1}]");
                    }
                }
            }
        }
    }

    /// <summary>log p(token | the tokens before it) at each (index, token) of <paramref name="document"/>'s ids, under the TorchSharp float64 reference model.</summary>
    private double[] ReferenceLogProbsAt(LineTokens document, (int Index, int Token)[] at)
    {
        using var scope = NewDisposeScope();
        var weights = TorchReferenceModel.Weights(model.Config).ToDictionary(w => w.Name, w => tensor(model.Weights[w.Name].ToFloatArray(), [.. w.Shape.Select(d => (long)d)], float64));
        long[] ids = [.. document.Ids.Select(i => (long)i)];
        var logp = nn.functional.log_softmax(TorchReferenceModel.Forward(model.Config, weights, tensor(ids, [1, ids.Length], int64))[0], 1);
        return [.. at.Select(a => logp[a.Index - 1, a.Token].item<double>())];
    }

    [Test]
    public void CodeTokenLossIsTheIndependentModelsLossOnCodeAndRationaleTokensApart()
    {
        var trace = Trace.FromCode("t", "def g(a, b):\n    s = a * b\n    return s\n");
        foreach (var rationales in new Dictionary<int, string>?[] { null, new() { [2] = "multiply" }, new() { [1] = "define g", [3] = "give it back" } })
        {
            var measured = CodeTokenLoss.Measure(model, tokenizer, [(trace, rationales)]);
            var pieces = ReferencePieceLogProbs(trace, rationales ?? []);
            var code = pieces.Where(p => p.Line > 0).ToList();
            var comments = pieces.Where(p => p.Line == 0).ToList();
            string what = rationales is null ? "no rationale" : string.Join(", ", rationales.Keys);
            Assert.That(measured.CodeTokens, Is.EqualTo(code.Sum(p => p.Tokens)), $"code tokens ({what})");
            Assert.That(measured.Code, Is.EqualTo(-code.Sum(p => p.LogProb) / code.Sum(p => p.Tokens)).Within(1e-4), $"code loss per token ({what})");
            Assert.That(measured.RationaleTokens, Is.EqualTo(comments.Sum(p => p.Tokens)), $"rationale tokens ({what})");
            if (comments.Count > 0)
            {
                Assert.That(measured.Rationale, Is.EqualTo(-comments.Sum(p => p.LogProb) / comments.Sum(p => p.Tokens)).Within(1e-4), $"rationale loss per token ({what})");
            }
            else
            {
                Assert.That(measured.Rationale, Is.NaN, "no rationale tokens, no rationale loss");
            }
        }

        IReadOnlyList<IReadOnlyList<string>> candidates = [[], ["multiply"], ["a", "b"]];
        var e = Assert.Throws<InvalidOperationException>(() => new Segmentation(0, [1f, 0f, 0f], [(1, 0)], []).KeptRationales(candidates))!;
        Assert.That(e.Message, Is.EqualTo("boundary 1 was kept with candidate 0 but has 0"), "boundary 1's own candidates, not its neighbour's");
    }

    /// <summary>
    /// A document built here on its own (each line, a "# rationale" comment at the trace's indent
    /// before the lines in <paramref name="rationales"/>), encoded whole after the end-of-text id that
    /// precedes it in a packed corpus, and scored by the TorchSharp float64 reference model: per
    /// piece (line or comment), its line (0 for a comment), the summed log-probability of the tokens
    /// that start in it, and their count. The end-of-text context is conditioned on, never scored.
    /// </summary>
    private List<(int Line, double LogProb, int Tokens)> ReferencePieceLogProbs(Trace trace, IReadOnlyDictionary<int, string> rationales)
    {
        var pieces = new List<(string Text, int Line)>();
        for (int t = 1; t <= trace.Count; t++)
        {
            if (rationales.TryGetValue(t, out var rationale))
            {
                pieces.Add(($"{trace.IndentBefore(t)}# {rationale}\n", 0));
            }

            pieces.Add((trace.Lines[t - 1] + "\n", t));
        }

        var weights = TorchReferenceModel.Weights(model.Config).ToDictionary(w => w.Name, w => tensor(model.Weights[w.Name].ToFloatArray(), [.. w.Shape.Select(d => (long)d)], float64));
        Assert.That(tokenizer.SequencePrefix, Is.Empty, "this fixture's documents have no template tokens");
        var doc = tokenizer.EncodeDocument(string.Concat(pieces.Select(p => p.Text)));
        long[] ids = [tokenizer.EndOfText!.Value, .. doc.Ids.Select(i => (long)i)];
        var logp = nn.functional.log_softmax(TorchReferenceModel.Forward(model.Config, weights, tensor(ids, [1, ids.Length], int64))[0], 1);
        var result = new List<(int, double, int)>();
        int from = 0;
        foreach (var (text, line) in pieces)
        {
            var mine = Enumerable.Range(0, doc.Ids.Length).Where(k => doc.Starts[k] >= from && doc.Starts[k] < from + text.Length).ToList();
            result.Add((line, mine.Sum(k => logp[k, ids[k + 1]].item<double>()), mine.Count));
            from += text.Length;
        }

        return result;
    }

    [Test]
    public void AOneLineTraceWeighsActingAgainstEachCandidate()
    {
        // One line, two candidates: Z = α·e^a + (1 − α)·e^−c·(e^b0 + e^b1); the second candidate wins the MAP.
        float[] seg = [-3f, -2.5f, -0.5f];
        var r = SegmentationInference.Infer(cpu, [new ScoredTrace(seg, [0f, 0f], 1, 2)], new ElboOptions(Alpha: 0.6, ThinkCost: 0.2))[0];
        double z = (0.6 * Math.Exp(-3)) + (0.4 * Math.Exp(-0.2) * (Math.Exp(-2.5) + Math.Exp(-0.5)));
        Assert.That(r.LogZ, Is.EqualTo(Math.Log(z)).Within(1e-5));
        Assert.That(r.ThinkPosterior, Is.EqualTo(new[] { 0.4 * Math.Exp(-0.2 - 2.5) / z, 0.4 * Math.Exp(-0.2 - 0.5) / z }).Within(1e-5));
        Assert.That(r.Kept, Is.EqualTo(new[] { (1, 1) }));
    }

    [Test]
    public void InferenceSaysWhichTraceHasTheWrongShape()
    {
        var e = Assert.Throws<ArgumentException>(() => SegmentationInference.Infer(cpu, [new ScoredTrace(new float[6], new float[2], 2), new ScoredTrace(new float[5], new float[2], 2)], new ElboOptions()))!;
        Assert.That(e.Message, Does.Contain("trace 1").And.Contain("seg [3, 2]").And.Contain("got 5"));
        foreach (double alpha in new[] { 0.0, 1.0 })
        {
            e = Assert.Throws<ArgumentException>(() => SegmentationInference.Infer(cpu, [new ScoredTrace(new float[6], new float[2], 2)], new ElboOptions(Alpha: alpha)))!;
            Assert.That(e.Message, Does.Contain($"alpha = {alpha}"), "α at either end of [0, 1] leaves one decision impossible");
        }

        e = Assert.Throws<ArgumentException>(() => SegmentationInference.Infer(cpu, [new ScoredTrace([], [], 0)], new ElboOptions()))!;
        Assert.That(e.Message, Does.Contain("trace 0: 0 lines"), "a trace without lines");
        e = Assert.Throws<ArgumentException>(() => SegmentationInference.Infer(cpu, [new ScoredTrace(new float[2], [], 2, 0)], new ElboOptions()))!;
        Assert.That(e.Message, Does.Contain("trace 0: 2 lines with 0 candidates"), "a boundary needs a candidate slot, even one of −∞");
        Assert.That(SegmentationInference.Infer(cpu, [], new ElboOptions()), Is.Empty);
        Assert.That(SegmentationInference.LogMarginalBound(cpu, []), Is.Empty);
    }

    [Test]
    public void ABatchOfTracesOfDifferentSizesGivesWhatEachGivesAlone()
    {
        // The batch is padded to its longest trace and its most candidates; no padding may reach a
        // result. A 3-line trace with 2 candidates per boundary whose rationales pay for themselves
        // (their lines gain 4 nats) and a 2-line one with 1 candidate whose rationales do not.
        var rng = new Random(11);
        ScoredTrace Make(int n, int kc, double gain) => new(
            [.. Enumerable.Range(0, ((n * kc) + 1) * n).Select(i => (float)(-0.5 - (2 * rng.NextDouble()) + (i >= n ? gain : 0)))],
            [.. Enumerable.Range(0, n * kc).Select(_ => (float)(-1 - rng.NextDouble()))],
            n,
            kc);
        ScoredTrace[] traces = [Make(3, 2, 4), Make(2, 1, -3)];
        var options = new ElboOptions(Alpha: 0.7, ThinkCost: 0.1, UseRationaleLogProb: true);
        var together = SegmentationInference.Infer(cpu, traces, options);
        var bounds = SegmentationInference.LogMarginalBound(cpu, traces);
        for (int i = 0; i < traces.Length; i++)
        {
            var alone = SegmentationInference.Infer(cpu, [traces[i]], options)[0];
            Assert.That(together[i].LogZ, Is.EqualTo(alone.LogZ).Within(1e-5), $"trace {i}: log Z");
            Assert.That(together[i].ThinkPosterior, Is.EqualTo(alone.ThinkPosterior).Within(1e-6), $"trace {i}: [T, K] think posteriors");
            Assert.That(together[i].LineMarginals, Is.EqualTo(alone.LineMarginals).Within(1e-6), $"trace {i}: [1 + T·K, T] line marginals");
            Assert.That(together[i].Kept, Is.EqualTo(alone.Kept), $"trace {i}: the MAP's rationales");
            Assert.That(bounds[i], Is.EqualTo(SegmentationInference.LogMarginalBound(cpu, [traces[i]])[0]).Within(1e-5), $"trace {i}: log Σ_z p(x, z)");
        }

        Assert.That(together[0].Kept, Is.Not.Empty, "the first trace keeps rationales");
        Assert.That(together[0].ThinkPosterior, Has.Length.EqualTo(6));
        Assert.That(together[1].Kept, Is.Empty, "the second keeps none");
        Assert.That(together[1].ThinkPosterior, Has.Length.EqualTo(2));
        Assert.That(together[1].LineMarginals, Has.Length.EqualTo(6));
    }
}
