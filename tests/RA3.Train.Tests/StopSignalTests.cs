using System.Runtime.InteropServices;
using NUnit.Framework;
using RA3.Train.Midtraining;
using RA3.Train.Pretraining;
using RA3.Train.Runs;

namespace RA3.Train.Tests;

/// <summary>
/// SIGTERM, sent to a real ra3 process in the middle of pre-training, makes it write a checkpoint at
/// the next step boundary, say how to resume and exit with 143; the resumed run ends exactly where
/// an uninterrupted one does. In a mid-training E-step it stops at the next update and says the
/// E-step starts again on resume.
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
    public void SigtermInAnEStepStopsAtTheNextUpdateAndTheRunResumes()
    {
        var settings = new MidtrainSettings
        {
            Init = TinyRuns.ModelDir,
            Tokenizer = TinyRuns.TokenizerDir,
            Data = "procedural:40",
            Out = Path.Combine(root, "midtrain"),
            Rounds = 1,
            Group = 2,
            LatentMaxTokens = 6,
            TracesPerStep = 2,
            MStepSteps = 2,
            MStepBatch = 2,
            MStepSequenceLength = 64,
            SyntaxSample = 2,
        };
        Declared.Save(settings, settings.Out);
        var (code, said) = TerminateWhenItSays(["midtrain", "--config", Path.Combine(settings.Out, Declared.ConfigFileName)], "think");
        Assert.That(code, Is.EqualTo(143), said);
        Assert.That(said, Does.Match(@"ra3 midtrain: stopped by SIGTERM in round 1's E-step after update \d+ of \d+; .*resume with: ra3 midtrain --config "));
        Assert.That(File.Exists(Path.Combine(settings.Out, "round-1", "estep", "candidates.json")), Is.False, "the E-step did not run to its end first");
        var round = new Midtrainer(settings, TextWriter.Null, false).Run().Single();
        Assert.That(round["elbo_after_mstep"], Is.Not.Null, "the resumed run finishes the round");
    }

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
