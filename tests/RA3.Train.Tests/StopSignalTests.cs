using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using NUnit.Framework;
using RA3.Train.Cli;
using RA3.Train.Midtraining;
using RA3.Train.Pretraining;
using RA3.Train.Runs;

namespace RA3.Train.Tests;

/// <summary>
/// SIGTERM, sent to a real ra3 process in the middle of pre-training, makes it write a checkpoint at
/// the next step boundary, say how to resume and exit with 143; the resumed run ends exactly where
/// an uninterrupted one does. In a mid-training E-step it checkpoints the E-step at the next update,
/// and the resumed run continues from that update to the uninterrupted run's result.
/// </summary>
public sealed partial class StopSignalTests
{
    private const int Sigterm = 15;

    private string root = null!;

    [SetUp]
    public void Open()
    {
        root = Directory.CreateTempSubdirectory("ra3-signal-").FullName;
        string corpus = Path.Combine(root, "corpus");
        Directory.CreateDirectory(corpus);
        for (int i = 0; i < 40; i++)
        {
            File.WriteAllText(Path.Combine(corpus, $"f{i:D2}.py"), $"def f{i}(x):\n    return x * {i} + {i % 5}\n");
        }
    }

    [TearDown]
    public void Close() => Directory.Delete(root, recursive: true);

    [Test]
    public void SigtermCheckpointsAtTheNextStepAndTheResumeMatchesAnUninterruptedRun()
    {
        var whole = Settings("whole");
        new Pretrainer(whole, TextWriter.Null, false).Run(resume: false);

        var split = Settings("split");
        Declared.Save(split, split.Out);
        var (code, said) = TerminateWhenItSays(["pretrain", "--config", Path.Combine(split.Out, Declared.ConfigFileName)], "step 20/");

        Assert.That(code, Is.EqualTo(143), said);
        Assert.That(said, Does.Match(@"ra3 pretrain: stopped by SIGTERM at step (\d+) of 3000 after writing .*step-\d{8}; resume with: ra3 pretrain --config .* --resume"));
        int stoppedAt = int.Parse(said.Split("at step ")[1].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(stoppedAt, Is.InRange(20, 2999));
        Assert.That(Directory.Exists(Path.Combine(split.Out, "checkpoints", $"step-{stoppedAt:D8}")), Is.True);

        var resumed = new Pretrainer(split, TextWriter.Null, false).Run(resume: true);
        Assert.That(resumed.Steps, Is.EqualTo(3000));
        Assert.That(File.ReadAllBytes(Path.Combine(split.Out, "final", "model.safetensors")), Is.EqualTo(File.ReadAllBytes(Path.Combine(whole.Out, "final", "model.safetensors"))), "bit-identical final weights");
    }

    [Test]
    public void SigtermInAnEStepCheckpointsAtTheNextUpdateAndTheRunResumesThere()
    {
        MidtrainSettings Settings(string name) => new()
        {
            Init = TinyRuns.ModelDir,
            Tokenizer = TinyRuns.TokenizerDir,
            Data = "procedural:40",
            Out = Path.Combine(root, name),
            Rounds = 1,
            Group = 2,
            LatentMaxTokens = 6,
            TracesPerStep = 2,
            EStepSaveEvery = 1000,  // no periodic checkpoint: the one found must be the signal's
            MStepSteps = 2,
            MStepBatch = 2,
            MStepSequenceLength = 64,
        };
        var settings = Settings("midtrain");
        Declared.Save(settings, settings.Out);
        var (code, said) = TerminateWhenItSays(["midtrain", "--config", Path.Combine(settings.Out, Declared.ConfigFileName)], "think");
        Assert.That(code, Is.EqualTo(143), said);
        var stop = Regex.Match(said, @"ra3 midtrain: stopped by SIGTERM in round 1's E-step after update (\d+) of (\d+), after writing (\S+); resume with: ra3 midtrain --config ");
        Assert.That(stop.Success, Is.True, said);
        int update = int.Parse(stop.Groups[1].Value, CultureInfo.InvariantCulture);
        string estep = Path.Combine(settings.Out, "round-1", "estep");
        Assert.That(stop.Groups[3].Value, Is.EqualTo(Path.Combine(estep, "checkpoints", $"step-{update:D8}")), "the checkpoint of the update the signal stopped at");
        Assert.That(File.Exists(Path.Combine(estep, "candidates.json")), Is.False, "the E-step did not run to its end first");

        var log = new StringWriter();
        var round = new Midtrainer(settings, log, false).Run().Single();
        Assert.That(log.ToString(), Does.Contain($"E-step resumed from {stop.Groups[3].Value} (update {update} of {stop.Groups[2].Value})"));
        Assert.That(Directory.Exists(Path.Combine(estep, "checkpoints")), Is.False, "a finished E-step's checkpoints are removed");

        var whole = Settings("midtrain-whole");
        var uninterrupted = new Midtrainer(whole, TextWriter.Null, false).Run().Single();
        foreach (string file in new[] { "estep/model/model.safetensors", "mstep/final/model.safetensors" })
        {
            Assert.That(File.ReadAllBytes(Path.Combine(settings.Out, "round-1", file)), Is.EqualTo(File.ReadAllBytes(Path.Combine(whole.Out, "round-1", file))), $"{file}: bit-identical to an uninterrupted run");
        }

        Assert.That(File.ReadAllText(Path.Combine(settings.Out, "round-1", "estep", "candidates.json")), Is.EqualTo(File.ReadAllText(Path.Combine(whole.Out, "round-1", "estep", "candidates.json"))), "the same candidates");
        Assert.That(round["log_z_after_mstep"]!.ToJsonString(), Is.EqualTo(uninterrupted["log_z_after_mstep"]!.ToJsonString()));
    }

    [Test]
    public void SigtermInAnEvaluationKeepsTheScoredProgramsAndTheSameCommandScoresOnlyTheRest()
    {
        // 40 problems, one sample each, scored by one worker: SIGTERM lands after a few programs.
        string problems = Path.Combine(root, "problems.jsonl"), samples = Path.Combine(root, "samples.jsonl");
        File.WriteAllLines(problems, Enumerable.Range(0, 40).Select(i => $$"""{"task_id": "t{{i}}", "prompt": "def f(x):\n", "tests": "assert f({{i}}) == {{2 * i}}"}"""));
        File.WriteAllLines(samples, Enumerable.Range(0, 40).Select(i => $$"""{"task_id": "t{{i}}", "completion": "    return {{(i % 3 == 0 ? "x + x" : "2 * x + sum(range(50000)) * 0")}}\n"}"""));
        string[] Args(string outcomes) => ["eval", "--problems", problems, "--samples", samples, "--workers", "1", "--outcomes", outcomes];
        string outcomes = Path.Combine(root, "stopped.outcomes.jsonl");

        var (code, said) = TerminateWhenItSays(Args(outcomes), "programs (");
        Assert.That(code, Is.EqualTo(143), said);
        var stop = Regex.Match(said, @"ra3 eval: stopped by SIGTERM after scoring (\d+) programs, their results kept in (\S+); resume with: ra3 eval ");
        Assert.That(stop.Success, Is.True, said);
        int scored = int.Parse(stop.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.That(scored, Is.InRange(1, 39), "stopped part-way");
        Assert.That(stop.Groups[2].Value, Is.EqualTo(outcomes + ".journal"));
        Assert.That(File.Exists(outcomes), Is.False, "no outcomes file for an unfinished evaluation");

        var log = new StringWriter();
        Assert.That(CommandLine.Run(Args(outcomes), log, TextWriter.Null), Is.EqualTo(0), log.ToString());
        Assert.That(log.ToString(), Does.Contain($"{scored} of 40 programs' results came from {outcomes}.journal"));
        Assert.That(File.Exists(outcomes + ".journal"), Is.False, "a finished evaluation removes its journal");

        string whole = Path.Combine(root, "whole.outcomes.jsonl");
        Assert.That(CommandLine.Run(Args(whole), TextWriter.Null, TextWriter.Null), Is.EqualTo(0));
        Assert.That(WithoutTimes(outcomes), Is.EqualTo(WithoutTimes(whole)), "the same outcomes as an uninterrupted evaluation");
        Assert.That(WithoutTimes(whole).Count(l => l.Contains("\"passed\"", StringComparison.Ordinal)), Is.EqualTo(40));
    }

    [Test]
    public void SigtermInAGenerationKeepsTheGeneratedProblemsAndTheSameCommandGeneratesTheRest()
    {
        string problems = Path.Combine(root, "gen-problems.jsonl");
        File.WriteAllLines(problems, Enumerable.Range(0, 60).Select(i => $$"""{"task_id": "g{{i}}", "prompt": "def f{{i}}():\n", "tests": "assert f{{i}}() == {{i}}"}"""));
        string[] Args(string name) =>
            ["eval", "--problems", problems, "--model", TinyRuns.ModelDir, "--tokenizer", TinyRuns.TokenizerDir, "-n", "2", "--max-new-tokens", "32", "--out", Path.Combine(root, name)];

        var (code, said) = TerminateWhenItSays(Args("stopped.json"), "generated 2/120 completions");
        Assert.That(code, Is.EqualTo(143), said);
        var stop = Regex.Match(said, @"ra3 eval: stopped by SIGTERM after generating the completions of (\d+) of 60 problems, kept in (\S+); resume with: ra3 eval ");
        Assert.That(stop.Success, Is.True, said);
        Assert.That(stop.Groups[2].Value, Is.EqualTo(Path.Combine(root, "stopped.json.samples.jsonl.journal")));

        var log = new StringWriter();
        Assert.That(CommandLine.Run(Args("stopped.json"), log, TextWriter.Null), Is.EqualTo(0), log.ToString());
        Assert.That(log.ToString(), Does.Contain("continuing an interrupted generation").And.Contain("generated 120/120 completions"));
        Assert.That(CommandLine.Run(Args("whole.json"), TextWriter.Null, TextWriter.Null), Is.EqualTo(0));
        Assert.That(File.ReadAllText(Path.Combine(root, "stopped.json.samples.jsonl")), Is.EqualTo(File.ReadAllText(Path.Combine(root, "whole.json.samples.jsonl"))), "the completions of an uninterrupted generation");
    }

    // An outcomes file's lines without their wall-clock field.
    private static List<string> WithoutTimes(string path) =>
        [.. File.ReadLines(path).Select(l => Regex.Replace(l, @",""wall_ms"":[0-9.]+", string.Empty))];

    // Starts ra3 with args, sends SIGTERM once its output has a line containing `marker`, and
    // returns its exit status and standard error.
    private static (int Code, string Stderr) TerminateWhenItSays(string[] args, string marker)
    {
        var running = new TaskCompletionSource();
        using var child = new Ra3Child(args, line =>
        {
            if (line.Contains(marker, StringComparison.Ordinal))
            {
                running.TrySetResult();
            }
        });
        Assert.That(running.Task.Wait(TimeSpan.FromSeconds(120)), Is.True, $"the child never printed '{marker}'");
        Assert.That(Kill(child.Id, Sigterm), Is.EqualTo(0));
        Assert.That(child.WaitForExit(TimeSpan.FromSeconds(120)), Is.True, "the child did not stop after SIGTERM");
        return (child.ExitCode, child.Stderr);
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);

    private PretrainSettings Settings(string name) => new()
    {
        Data = Path.Combine(root, "corpus"),
        Out = Path.Combine(root, name),
        Family = "llama",
        Hidden = 16,
        Layers = 1,
        Heads = 2,
        KvHeads = 1,
        Intermediate = 32,
        SequenceLength = 16,
        BatchSize = 2,
        Steps = 3000,
        Warmup = 2,
        EvalEvery = 1000,
        EvalSequences = 2,
        SaveEvery = 1000,
        Seed = 5,
    };
}
