using System.Diagnostics;
using System.Text.Json.Nodes;
using NUnit.Framework;
using RA3.Testing;
using RA3.Train.Demo;
using RA3.Train.Midtraining;
using RA3.Train.PostTraining;
using RA3.Train.Runs;

namespace RA3.Train.Tests;

/// <summary>
/// SIGKILL at random moments — the times drawn from the test's seed and printed — of a real
/// <c>ra3 midtrain</c>, <c>ra3 rlvr</c> and <c>ra3 demo</c> process (in the E-step, the inference, the
/// M-step, a write, between phases: wherever the time falls), then the same command again until it
/// finishes: the final weights are byte-identical to an uninterrupted run's and the metrics equal
/// (all but wall-clock figures). Unlike <c>--stop-after</c>, a kill can cut a write short.
/// </summary>
public sealed class KillResumeTests
{
    private string work = null!;

    [SetUp]
    public void Open() => work = Directory.CreateTempSubdirectory("ra3-kill-").FullName;

    [TearDown]
    public void Close() => Directory.Delete(work, recursive: true);

    [Test]
    public void MidtrainKilledAtRandomMomentsEndsAsAnUninterruptedRun()
    {
        MidtrainSettings Settings(string name) => new()
        {
            Init = TinyRuns.ModelDir,
            Tokenizer = TinyRuns.TokenizerDir,
            Data = "procedural:12",
            Out = Path.Combine(work, name),
            Rounds = 2,
            Group = 2,
            LatentMaxTokens = 6,
            ThinkFloor = 0.5,
            TracesPerStep = 4,
            EStepSaveEvery = 1,  // a kill inside an E-step resumes from its last update
            MStepSteps = 12,
            MStepBatch = 2,
            MStepSequenceLength = 128,
        };
        var (whole, killed) = KillThenFinish("midtrain", Settings, s => s.Out, kills: 4);
        SameResults(whole, killed, ["metrics.jsonl", "round-1/summary.json", "round-2/summary.json", "round-2/inference.json"]);
    }

    [Test]
    public void RlvrKilledAtRandomMomentsEndsAsAnUninterruptedRun()
    {
        string tasks = TinyRuns.WriteHalfSolvableProblems(Path.Combine(work, "tasks.jsonl"));
        RlvrSettings Settings(string name) => new()
        {
            Init = TinyRuns.ModelDir,
            Tokenizer = TinyRuns.TokenizerDir,
            Problems = tasks,
            EvalProblems = tasks,
            Out = Path.Combine(work, name),
            Steps = 12,
            PromptsPerStep = 2,
            Group = 2,
            MaxNewTokens = 16,
            EvalEvery = 4,
            EvalSamples = 2,
            EvalLimit = 2,
            SaveEvery = 3,
            LearningRate = 1e-3f,
        };
        var (whole, killed) = KillThenFinish("rlvr", Settings, s => s.Out, kills: 4);
        SameResults(whole, killed, ["metrics.jsonl"]);
        var norms = File.ReadLines(Path.Combine(whole, "metrics.jsonl")).Skip(1).Select(l => JsonNode.Parse(l)!["grad_norm"]!.GetValue<double>());
        Assert.That(norms, Has.Some.GreaterThan(0), "the updates moved the weights, so equal weights say something");
    }

    [Test]
    public void DemoKilledAtRandomMomentsEndsAsAnUninterruptedRun()
    {
        DemoSettings Settings(string name) => new()
        {
            Out = Path.Combine(work, name),
            Seeds = 1,
            PretrainSteps = 6,
            PretrainFunctions = 40,
            Traces = 4,
            HeldOutProblems = 2,
            Samples = 2,
            Midtrain = new DemoSettings().Midtrain with { Rounds = 1, MStepSteps = 4, Group = 2 },
            Rlvr = new DemoSettings().Rlvr with { Steps = 2, Group = 2, EvalEvery = 1, SaveEvery = 1 },
        };
        var (whole, killed) = KillThenFinish("demo", Settings, s => s.Out, kills: 2);
        SameResults(whole, killed, ["seed-1/eval-ra3.json", "seed-1/eval-ntp.json", "seed-1/rlvr-ra3/metrics.jsonl", "seed-1/ra3/metrics.jsonl"]);
    }

    // Saves the settings of two run folders, "whole" and "killed", runs `ra3 <command>` in the first
    // uninterrupted and in the second kills it `kills` times, each at a random point of the
    // uninterrupted run's duration, then runs it to the end. Returns the two folders.
    private static (string Whole, string Killed) KillThenFinish<T>(string command, Func<string, T> settings, Func<T, string> folder, int kills)
    {
        var (whole, killed) = (settings("whole"), settings("killed"));
        Declared.Save(whole, folder(whole));
        Declared.Save(killed, folder(killed));
        string[] Args(T run) => [command, "--config", Path.Combine(folder(run), Declared.ConfigFileName)];
        var clock = Stopwatch.StartNew();
        var (code, said) = Ra3(Args(whole), TimeSpan.FromMinutes(10));
        Assert.That(code, Is.EqualTo(0), said);
        var duration = clock.Elapsed;
        TestContext.Out.WriteLine($"uninterrupted: {duration.TotalSeconds:0.0} s");
        var random = TestSeed.Random;
        for (int i = 0; i < kills; i++)
        {
            var at = duration * random.NextDouble();
            (code, said) = Ra3(Args(killed), at);
            TestContext.Out.WriteLine($"kill {i + 1} at {at.TotalSeconds:0.00} s{(code is null ? string.Empty : $": it finished first (exit {code})")}");
            Assert.That(code ?? 0, Is.EqualTo(0), said);
        }

        (code, said) = Ra3(Args(killed), TimeSpan.FromMinutes(10));
        Assert.That(code, Is.EqualTo(0), said);
        return (folder(whole), folder(killed));
    }

    // Runs ra3 with args; SIGKILLs it after `killAfter` (no chance to clean up). Null exit code: killed.
    private static (int? Code, string Output) Ra3(string[] args, TimeSpan killAfter)
    {
        using var child = new Ra3Child(args);
        bool finished = child.WaitForExit(killAfter);
        if (!finished)
        {
            child.Kill();
        }

        return (finished ? child.ExitCode : null, child.Output);
    }

    // The final weights byte for byte, and each metrics file equal line by line but for wall-clock figures.
    private static void SameResults(string whole, string killed, string[] metricFiles)
    {
        foreach (string weights in Directory.GetFiles(whole, "model.safetensors", SearchOption.AllDirectories).Where(p => p.Contains($"{Path.DirectorySeparatorChar}final{Path.DirectorySeparatorChar}", StringComparison.Ordinal)))
        {
            string twin = Path.Combine(killed, Path.GetRelativePath(whole, weights));
            Assert.That(File.Exists(twin), Is.True, $"{twin} is missing");
            Assert.That(File.ReadAllBytes(twin), Is.EqualTo(File.ReadAllBytes(weights)), $"{Path.GetRelativePath(whole, weights)}: bit-identical final weights");
        }

        foreach (string file in metricFiles)
        {
            Assert.That(Figures(killed, file), Is.EqualTo(Figures(whole, file)), file);
        }
    }

    // A run's figures name its own folder; that name is the one difference allowed.
    private static List<string> Figures(string run, string file)
    {
        string path = Path.Combine(run, file);
        Assert.That(File.Exists(path), Is.True, $"{path} is missing");
        string text = File.ReadAllText(path).Replace(run, "RUN", StringComparison.Ordinal);
        var records = path.EndsWith(".jsonl", StringComparison.Ordinal) ? text.Split('\n', StringSplitOptions.RemoveEmptyEntries) : [text];
        return [.. records.Select(r => WithoutTimes(JsonNode.Parse(r)!)?.ToJsonString() ?? "null")];
    }

    private static JsonNode? WithoutTimes(JsonNode node)
    {
        if (node is JsonObject o)
        {
            foreach (string key in o.Select(p => p.Key).Where(IsWallClock).ToList())
            {
                o.Remove(key);
            }

            foreach (var (_, value) in o.ToList())
            {
                if (value is not null)
                {
                    WithoutTimes(value);
                }
            }
        }

        return node;
    }

    private static bool IsWallClock(string key) =>
        key.EndsWith("_s", StringComparison.Ordinal) || key.Contains("per_s", StringComparison.Ordinal) || key.Contains("seconds", StringComparison.Ordinal) || key.Contains("time", StringComparison.Ordinal) || key == "model";
}
