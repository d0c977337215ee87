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
/// The first pieces of RA3 mid-training (issue 6): traces and rationale insertion (and that the
/// result still parses, checked in the sandbox), the E-step reward and GRPO advantages on
/// hand-computed cases, and the temporal-ELBO inference against brute force over all think/act
/// assignments of a two-line trace.
/// </summary>
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
    public async Task TracesWithARationaleAtEveryLineStillParse()
    {
        var problems = ProblemSetLoader.Load(Fixtures.SharedPath("data", "humaneval", "HumanEval.jsonl.gz")).Problems;
        var texts = problems.Select(p => Trace.FromCode(p.TaskId, p.Prompt + p.CanonicalSolution))
            .Select(t => t.Render(Enumerable.Range(1, t.Count).ToDictionary(i => i, i => $"step {i}: what comes next"))).ToList();
        texts.Add("def broken(:\n    pass\n");
        using var sandbox = Sandbox.Sandbox.Create();
        using var pool = new SandboxPool(sandbox);
        var (valid, rate) = await SyntaxCheck.ParseAsync(pool, texts);
        Assert.That(valid.Take(problems.Count), Is.All.True);
        Assert.That(valid[^1], Is.False, "a program that does not parse must be reported");
        Assert.That(rate, Is.EqualTo(problems.Count / (double)texts.Count).Within(1e-12));
    }

    [Test]
    public void StepRewardSumsTheNextKLinesAndChargesAThought()
    {
        double[] lines = [-1.0, -2.0, -3.0];
        Assert.That(Rewards.Step(lines, 2, 1, thinks: true, c: 0.05), Is.EqualTo(-2.05).Within(1e-12));
        Assert.That(Rewards.Step(lines, 2, 2, thinks: false, c: 0.05), Is.EqualTo(-5.0).Within(1e-12));
        Assert.That(Rewards.Step(lines, 3, 2, thinks: true, c: 0.2), Is.EqualTo(-3.2).Within(1e-12), "k past the end sums what is left");
        Assert.Throws<ArgumentOutOfRangeException>(() => Rewards.Step(lines, 4, 1, thinks: false, c: 0));
    }

    [Test]
    public void GroupAdvantagesAreCentredAndOptionallyScaled()
    {
        Assert.That(Rewards.GroupAdvantages([1.0, 2.0, 3.0], normalise: false), Is.EqualTo(new[] { -1.0, 0.0, 1.0 }).Within(1e-12));
        double s = Math.Sqrt(2.0 / 3.0);
        Assert.That(Rewards.GroupAdvantages([1.0, 2.0, 3.0], normalise: true), Is.EqualTo(new[] { -1 / s, 0.0, 1 / s }).Within(1e-12));
        Assert.That(Rewards.GroupAdvantages([0.5, 0.5], normalise: true), Is.EqualTo(new[] { 0.0, 0.0 }));
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

    [Test]
    public void CandidateScoresAreTheLineSumsOfAnIndependentModel()
    {
        var trace = Trace.FromCode("t", "def f(x):\n    y = x + 1\n\n    return y\n");
        string?[] rationales = [null, "add one", "blank", "return it"];
        var scored = CandidateScorer.Score(model, tokenizer, trace, rationales);

        int n = trace.Count;
        for (int j = 0; j <= n; j++)
        {
            if (j > 0 && rationales[j - 1] is null)
            {
                Assert.That(scored.Seg.Skip(j * n).Take(n), Is.All.EqualTo(float.NegativeInfinity), $"boundary {j} has no candidate");
                continue;
            }

            var pieces = ReferencePieceLogProbs(trace, j == 0 ? [] : new Dictionary<int, string> { [j] = rationales[j - 1]! });
            foreach (var (line, logProb, _) in pieces)
            {
                if (line > 0 && line >= j)
                {
                    Assert.That(scored.Seg[(j * n) + line - 1], Is.EqualTo(logProb).Within(1e-3), $"seg[{j}, line {line}]");
                }
                else if (line == 0)
                {
                    Assert.That(scored.RationaleLogProbs[j - 1], Is.EqualTo(logProb).Within(1e-3), $"rationale {j}");
                }
            }
        }
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

        string?[] candidates = [null, "multiply", null];
        Assert.Throws<InvalidOperationException>(() => new Segmentation(0, [1f, 0f, 0f], [1]).KeptRationales(candidates));
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

        using var scope = NewDisposeScope();
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
    public void InferenceSaysWhichTraceHasTheWrongShape()
    {
        var e = Assert.Throws<ArgumentException>(() => SegmentationInference.Infer(cpu, [new ScoredTrace(new float[6], new float[2], 2), new ScoredTrace(new float[5], new float[2], 2)], new ElboOptions()))!;
        Assert.That(e.Message, Does.Contain("trace 1").And.Contain("seg [3, 2]").And.Contain("got 5"));
        Assert.Throws<ArgumentException>(() => SegmentationInference.Infer(cpu, [new ScoredTrace(new float[6], new float[2], 2)], new ElboOptions(Alpha: 1.0)));
    }
}
