using System.Text.Json.Nodes;
using NUnit.Framework;
using RA3.Train.Cli;
using RA3.Model.IO;
using RA3.Train.Pretraining;
using RA3.Train.Runs;

namespace RA3.Train.Tests;

/// <summary>
/// Pre-training end to end on a small corpus: the loss falls, a run stopped mid-way and resumed
/// produces exactly the losses of the uninterrupted run, and bad options or a damaged checkpoint
/// give errors that say what is wrong.
/// </summary>
public sealed class PretrainTests
{
    private string root = null!;

    [SetUp]
    public void MakeFolder()
    {
        root = Path.Combine(Path.GetTempPath(), $"ra3-pretrain-{Guid.NewGuid():N}");
        string corpus = Path.Combine(root, "corpus");
        Directory.CreateDirectory(corpus);
        for (int i = 0; i < 60; i++)
        {
            File.WriteAllText(Path.Combine(corpus, $"f{i:D2}.py"), $"def f{i}(x, y):\n    total = x * {i} + y\n    for k in range({i % 7 + 2}):\n        total += k\n    return total\n");
        }
    }

    [TearDown]
    public void RemoveFolder() => Directory.Delete(root, recursive: true);

    [TestCase("f32")]
    [TestCase("bf16")]
    public void StoppedAndResumedRunMatchesTheUninterruptedRunExactly(string dtype)
    {
        var whole = Settings("whole") with { DType = dtype };
        var result = new Pretrainer(whole, TextWriter.Null, false).Run(resume: false);
        Assert.That(result.Steps, Is.EqualTo(whole.Steps));
        var wholeLosses = Losses(whole.Out);
        Assert.That(wholeLosses[^1], Is.LessThan(wholeLosses[0] - 0.5), "the loss falls");

        var split = Settings("split") with { DType = dtype };
        var first = new Pretrainer(split with { StopAfter = 5 }, TextWriter.Null, false).Run(resume: false);
        Assert.That(first.Steps, Is.EqualTo(5));
        Assert.That(first.FinalModel, Is.Null);
        // The resume turns recomputation on: it is not part of the run's identity, as it changes no number.
        var resumed = new Pretrainer(split with { Recompute = true }, TextWriter.Null, false).Run(resume: true);
        Assert.That(resumed.Steps, Is.EqualTo(split.Steps));
        Assert.That(Losses(split.Out), Is.EqualTo(wholeLosses), "same losses, step for step");
        Assert.That(File.ReadAllBytes(Path.Combine(split.Out, "final", "model.safetensors")), Is.EqualTo(File.ReadAllBytes(Path.Combine(whole.Out, "final", "model.safetensors"))));
        using var final = SafeTensorsFile.Open(Path.Combine(whole.Out, "final", "model.safetensors"));
        Assert.That(final.Tensors.Select(t => t.DType).Distinct(), Is.EqualTo(new[] { dtype == "bf16" ? "BF16" : "F32" }), "a fresh model's final weights are saved as --dtype");
    }

    [Test]
    public void ResumingWithOtherSettingsIsRefused()
    {
        var s = Settings("run") with { Steps = 3 };
        new Pretrainer(s, TextWriter.Null, false).Run(resume: false);
        var ex = Assert.Throws<InvalidOperationException>(() => new Pretrainer(s with { LearningRate = 5e-3f }, TextWriter.Null, false).Run(resume: true));
        Assert.That(ex!.Message, Does.Contain("other settings"));
    }

    [Test]
    public void ACorruptLatestCheckpointResumesFromTheNewestIntactOneAndSaysSo()
    {
        var whole = Settings("whole");
        new Pretrainer(whole, TextWriter.Null, false).Run(resume: false);

        // Checkpoints at steps 4 and 8 (and 12 would follow); the newest is damaged after a stop at 8.
        var s = Settings("corrupt") with { SaveEvery = 4 };
        new Pretrainer(s with { StopAfter = 8 }, TextWriter.Null, false).Run(resume: false);
        string trainer = Path.Combine(s.Out, "checkpoints", "step-00000008", "trainer.safetensors");
        byte[] bytes = File.ReadAllBytes(trainer);
        bytes[^10] ^= 0x5A;
        File.WriteAllBytes(trainer, bytes);

        var log = new StringWriter();
        var result = new Pretrainer(s, log, false).Run(resume: true);
        Assert.That(log.ToString(), Does.Contain($"checkpoint {Path.GetDirectoryName(trainer)} is corrupt").And.Contain("checksum")
            .And.Contain($"continuing from {Path.Combine(s.Out, "checkpoints", "step-00000004")}"));
        Assert.That(result.Steps, Is.EqualTo(s.Steps));
        Assert.That(Losses(s.Out), Is.EqualTo(Losses(whole.Out)), "resumed from step 4, the run still ends where the uninterrupted one does");
    }

    [Test]
    public void WhenEveryCheckpointIsCorruptTheErrorNamesEachFile()
    {
        var s = Settings("corrupt") with { Steps = 3 };
        new Pretrainer(s, TextWriter.Null, false).Run(resume: false);
        string trainer = Path.Combine(s.Out, "checkpoints", "step-00000003", "trainer.safetensors");
        byte[] bytes = File.ReadAllBytes(trainer);
        bytes[^10] ^= 0x5A;
        File.WriteAllBytes(trainer, bytes);
        var ex = Assert.Throws<InvalidDataException>(() => new Pretrainer(s with { Steps = 4 }, TextWriter.Null, false).Run(resume: true));
        Assert.That(ex!.Message, Does.Contain("no intact checkpoint").And.Contain(trainer).And.Contain("checksum"));
    }

    [Test]
    public void ResumingAFinishedRunSaysItIsCompleteWithItsFinalFigures()
    {
        var s = Settings("done") with { Steps = 4 };
        var first = new Pretrainer(s, TextWriter.Null, false).Run(resume: false);
        var rates = File.ReadLines(Path.Combine(s.Out, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!["tokens_per_s"]!.GetValue<double>()).ToList();
        Assert.That(rates, Has.Count.EqualTo(4).And.All.GreaterThan(0), "every step's rate counts that step's own tokens (step 1's was 0 when it did not)");
        var stdout = new StringWriter();
        Assert.That(CommandLine.Run(["pretrain", "--config", Path.Combine(s.Out, "ra3-config.json"), "--resume"], stdout, TextWriter.Null), Is.EqualTo(0));
        string text = stdout.ToString();
        Assert.That(text, Does.Contain("is complete (4 of 4 steps)").And.Contain($"already complete: step 4, train loss {first.TrainLoss:F4}, validation loss {first.ValidationLoss:F4}"));
        Assert.That(text, Does.Not.Contain("NaN").And.Not.Contain("0 tok/s"));
    }

    [Test]
    public void ADivergingRunStopsAtTheStepWithOneLineAndValidMetrics()
    {
        var s = Settings("diverge") with { LearningRate = 1e4f, Clip = 0, SaveEvery = 1 };
        Declared.Save(s, s.Out);
        var stderr = new StringWriter();
        int code = CommandLine.Run(["pretrain", "--config", Path.Combine(s.Out, Declared.ConfigFileName)], TextWriter.Null, stderr);
        Assert.That(code, Is.EqualTo(1));
        string[] lines = stderr.ToString().TrimEnd().Split('\n');
        Assert.That(lines, Has.Length.EqualTo(1), stderr.ToString());
        Assert.That(lines[0], Does.Match(@"^ra3 pretrain: step \d+: the (loss|gradient norm) is (NaN|∞|-∞|Infinity|-Infinity); the update was not applied and the run stops: the last good checkpoint is .*step-\d{8}"));
        int stopped = int.Parse(lines[0].Split("step ")[1].Split(':')[0], System.Globalization.CultureInfo.InvariantCulture);

        var records = File.ReadLines(Path.Combine(s.Out, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.That(records, Has.Count.EqualTo(stopped - 1), "the diverged step logs nothing: the run stopped inside it");
        Assert.That(records.All(r => r["loss"] is not null && double.IsFinite(r["loss"]!.GetValue<double>())), Is.True);
        Assert.That(TrainingCheckpoint.Latest(s.Out), Does.EndWith($"step-{stopped - 1:D8}"), "the last good step's checkpoint is the one named");
    }

    [Test]
    public void SkipNonFiniteSkipsThatManyStepsThenStops()
    {
        var s = Settings("skip") with { LearningRate = 1e4f, Clip = 0, SkipNonFinite = 2 };
        var log = new StringWriter();
        var e = Assert.Throws<DivergenceException>(() => new Pretrainer(s, log, false).Run(resume: false))!;
        Assert.That(e.Message, Does.Contain("2 steps were skipped before"));
        Assert.That(log.ToString(), Does.Contain("the update was skipped (1 of the 2 --skip-nonfinite allows)").And.Contain("(2 of the 2"));
        var skipped = File.ReadLines(Path.Combine(s.Out, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(r => r["skipped"] is not null).ToList();
        Assert.That(skipped, Has.Count.EqualTo(2), "a skipped step is a valid JSON line with skipped: true");
        Assert.That(skipped.Select(r => r["step"]!.GetValue<int>()), Is.All.LessThan(e.Step));
    }

    [Test]
    public void ACheckpointOfAnotherFormatIsRefusedWithOneLine()
    {
        var s = Settings("old") with { Steps = 2 };
        new Pretrainer(s, TextWriter.Null, false).Run(resume: false);

        // Rewrite the trainer state as a format-1 ra3 wrote it: the same tensors, no "format" field.
        string trainer = Path.Combine(s.Out, "checkpoints", "step-00000002", "trainer.safetensors");
        List<SafeTensorsWriter.Entry> entries;
        Dictionary<string, string> metadata;
        using (var file = SafeTensorsFile.Open(trainer))
        {
            entries = [.. file.Tensors.Select(t => SafeTensorsWriter.Floats(t.Name, file.ReadFloats(t.Name), t.Shape))];
            metadata = file.Metadata.Where(kv => kv.Key != "format" && kv.Key != SafeTensorsFile.ChecksumKey).ToDictionary(kv => kv.Key, kv => kv.Value);
        }

        SafeTensorsWriter.Write(trainer, entries, metadata);
        var e = Assert.Throws<NotSupportedException>(() => new Pretrainer(s with { Steps = 3 }, TextWriter.Null, false).Run(resume: true))!;
        Assert.That(e.Message, Is.EqualTo($"checkpoint {Path.GetDirectoryName(trainer)} was written by an older ra3 (format 1; this one reads format {FormatVersion.Current}): start a new run in another folder, or delete it"));
    }

    [Test]
    public void ARunFolderOfAnotherFormatIsRefused()
    {
        string folder = Path.Combine(root, "demo");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "settings.json"), "{}");  // an unversioned folder: format 1
        var e = Assert.Throws<NotSupportedException>(() => RunFolder.Claim(folder, "{}"))!;
        Assert.That(e.Message, Does.Contain("older ra3 (format 1"));
        File.WriteAllText(Path.Combine(folder, "format"), $"{FormatVersion.Current + 1}\n");
        Assert.That(Assert.Throws<NotSupportedException>(() => RunFolder.Claim(folder, "{}"))!.Message, Does.Contain("a newer ra3"));
        File.WriteAllText(Path.Combine(folder, "format"), $"{FormatVersion.Current}\n");
        Assert.DoesNotThrow(() => RunFolder.Claim(folder, "{}"));
    }

    [Test]
    public void ACheckpointThatCannotBeWrittenLeavesThePreviousOneAndStopsWithOneLine()
    {
        // A full disk, made by a 700 KiB tmpfs as the run folder: the step-4 checkpoint (~470 KiB)
        // fits, the step-8 one does not. Mounting needs root, as CI runs.
        if (Environment.UserName != "root")
        {
            Assert.Ignore("mounting a tmpfs needs root (CI runs as root)");
        }

        string disk = Path.Combine(root, "disk");
        Directory.CreateDirectory(disk);
        Assert.That(Mount($"-t tmpfs -o size=700k tmpfs {disk}"), Is.Zero, "mount a tmpfs");
        try
        {
            var s = Settings("unused") with { Out = Path.Combine(disk, "run"), SaveEvery = 4 };
            var stderr = new StringWriter();
            Declared.Save(s, Path.Combine(root, "config"));
            int code = CommandLine.Run(["pretrain", "--config", Path.Combine(root, "config", Declared.ConfigFileName)], TextWriter.Null, stderr);
            string said = stderr.ToString().TrimEnd();
            Assert.That(code, Is.EqualTo(1), said);
            Assert.That(said.Split('\n'), Has.Length.EqualTo(1), said);
            Assert.That(said, Does.Contain("could not write checkpoint step-00000008").And.Contain("step-00000004").And.Contain("unchanged"));
            string checkpoints = Path.Combine(s.Out, "checkpoints");
            Assert.That(File.ReadAllText(Path.Combine(checkpoints, "latest")).Trim(), Is.EqualTo("step-00000004"));
            Assert.That(Directory.GetDirectories(checkpoints).Select(Path.GetFileName), Is.EqualTo(new[] { "step-00000004" }), "no partial folder is left");
            Assert.DoesNotThrow(() =>
            {
                using var intact = SafeTensorsFile.Open(Path.Combine(checkpoints, "step-00000004", "trainer.safetensors"));
                intact.VerifyChecksum();
            });
        }
        finally
        {
            Mount($"-l {disk}", "umount");
        }
    }

    private static int Mount(string arguments, string tool = "mount")
    {
        using var p = System.Diagnostics.Process.Start(tool, arguments.Split(' '));
        p.WaitForExit();
        return p.ExitCode;
    }

    [Test]
    public void UnknownOptionIsAUsageError()
    {
        var err = new StringWriter();
        int code = CommandLine.Run(["pretrain", "--lerning-rate", "1"], TextWriter.Null, err);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err.ToString(), Does.Contain("--lerning-rate"));
    }

    private PretrainSettings Settings(string name) => new()
    {
        Data = Path.Combine(root, "corpus"),
        Out = Path.Combine(root, name),
        Tokenizer = "bytes",
        Family = "llama",
        Hidden = 32,
        Layers = 2,
        Heads = 4,
        KvHeads = 2,
        Intermediate = 64,
        SequenceLength = 32,
        BatchSize = 4,
        Accumulation = 2,
        Steps = 12,
        LearningRate = 1e-2f,
        Warmup = 2,
        EvalEvery = 4,
        EvalSequences = 4,
        SaveEvery = 100,
        Seed = 99,
    };

    private static double[] Losses(string run) =>
        [.. File.ReadLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!["loss"]!.GetValue<double>())];
}
