using System.Diagnostics;
using System.Text.Json.Nodes;
using NUnit.Framework;
using RA3.Model.IO;
using RA3.Train.Distributed;
using RA3.Train.Midtraining;
using RA3.Train.PostTraining;
using RA3.Train.Pretraining;
using RA3.Train.Runs;

namespace RA3.Train.Tests;

/// <summary>
/// Data parallelism on two ranks that mpirun starts on this machine, against one process: the
/// same weights after pre-training with and without the sharded optimizer (the batch split 2 + 1,
/// so an unweighted average of the ranks' gradients would show), the same sampled rationales,
/// kept rationales and RLVR samples, and nearly the same weights after an EM round and a few RLVR
/// steps; only rank 0 writes; a rank killed mid-step ends the job with an error and the run then
/// resumes to the uninterrupted run's weights, byte for byte; a rank that hangs ends the job after
/// the collective timeout.
/// </summary>
public sealed partial class DataParallelTests
{
    private string work = null!;

    [OneTimeSetUp]
    public void NeedsMpirun()
    {
        bool found = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':').Any(d => File.Exists(Path.Combine(d, "mpirun")));
        Assert.That(found, Is.True, "mpirun is not installed: tools/install-mpi.sh installs Open MPI (test.sh runs it)");
    }

    [SetUp]
    public void Open()
    {
        work = Directory.CreateTempSubdirectory("ra3-mpi-").FullName;
        var lines = Enumerable.Range(0, 80).Select(i => new JsonObject { ["text"] = $"def f{i}(xs):\n    total = {i}\n    for x in xs:\n        if x % {(i % 5) + 2} == 0:\n            total += x * {i % 7}\n    return total\n" }.ToJsonString());
        File.WriteAllLines(Path.Combine(work, "corpus.jsonl"), lines);
    }

    [TearDown]
    public void Close() => Directory.Delete(work, recursive: true);

    [TestCase(8, 2)]
    [TestCase(3, 2)]
    [TestCase(7, 3)]
    [TestCase(2, 5)]
    public void RanksShareABatchContiguouslyInRankOrder(int items, int ranks)
    {
        var shares = Enumerable.Range(0, ranks).Select(r => DataParallel.ShareOf(items, r, ranks)).ToList();
        Assert.That(shares.Select(s => s.Start), Is.EqualTo(shares.Select((s, r) => shares.Take(r).Sum(x => x.Count))), "each share starts where the one before ends");
        Assert.That(shares.Sum(s => s.Count), Is.EqualTo(items));
        Assert.That(shares.Max(s => s.Count) - shares.Min(s => s.Count), Is.LessThanOrEqualTo(1), "as even as it can be");
        Assert.That(shares.Select(s => s.Count), Is.Ordered.Descending, "the first ranks take the extra items");
    }

    [TestCase(0)]
    [TestCase(1)]
    public void PretrainingOnTwoRanksEndsWithTheWeightsOfOneProcess(int zero)
    {
        var one = Pretraining("one");
        new Pretrainer(one, TextWriter.Null, false).Run(resume: false);
        var two = Pretraining("two") with { Parallel = new ParallelSettings { Zero = zero } };
        Ra3OnTwoRanks(["pretrain", "--config", Save(two)]);

        AssertClose(Path.Combine(two.Out, "final", "model.safetensors"), Path.Combine(one.Out, "final", "model.safetensors"), 1e-5);
        AssertClose(Checkpoint(two.Out, 10, "trainer.safetensors"), Checkpoint(one.Out, 10, "trainer.safetensors"), 1e-5);
        Assert.That(Figures(two.Out, "loss"), Is.EqualTo(Figures(one.Out, "loss")).Within(1e-3).Percent, "rank 0 logs the global batch's loss");
        Assert.That(Figures(two.Out, "val_loss"), Is.EqualTo(Figures(one.Out, "val_loss")).Within(1e-3).Percent, "the ranks' validation shares add up to the whole");
        Assert.That(RelativeDifference(Checkpoint(one.Out, 5, "model.safetensors"), Checkpoint(one.Out, 10, "model.safetensors")), Is.GreaterThan(1e-3), "the steps moved the weights, so equal weights say something");
    }

    [Test]
    public void OnlyRankZeroWrites()
    {
        // Rank 1 is given another run folder: anything it wrote would be there.
        var run = Pretraining("run") with { Parallel = new ParallelSettings { Zero = 1 } };
        var elsewhere = run with { Out = Path.Combine(work, "rank-1") };
        Ra3(Ra3Child.Mpirun([["pretrain", "--config", Save(run)], ["pretrain", "--config", Save(elsewhere, Path.Combine(work, "rank-1-config"))]]), TimeSpan.FromMinutes(3));
        Assert.That(Directory.Exists(elsewhere.Out), Is.False, "rank 1 created its run folder");
        Assert.That(Directory.GetFiles(Path.Combine(run.Out, "final")), Is.Not.Empty, "rank 0 wrote the run");
    }

    [Test]
    public void AnEmRoundAndRlvrOnTwoRanksDrawWhatOneProcessDraws()
    {
        MidtrainSettings Midtraining(string name) => new()
        {
            Init = TinyRuns.ModelDir,
            Tokenizer = TinyRuns.TokenizerDir,
            Data = "procedural:6",
            Out = Path.Combine(work, name),
            Rounds = 1,
            Group = 2,
            LatentMaxTokens = 6,
            ThinkFloor = 0.5,
            TracesPerStep = 3,
            Baseline = "elbo",  // the ranks score the ELBO baselines of their own traces and gather them
            MStepSteps = 3,
            MStepBatch = 3,
            MStepSequenceLength = 128,
        };
        var (one, two) = (Midtraining("em-one"), Midtraining("em-two"));
        new Midtrainer(one, TextWriter.Null, false).Run();
        Ra3OnTwoRanks(["midtrain", "--config", Save(two)]);
        foreach (string file in new[] { "round-1/estep/candidates.json", "round-1/kept.json", "round-1/corpus.jsonl" })
        {
            Assert.That(File.ReadAllText(Path.Combine(two.Out, file)), Is.EqualTo(File.ReadAllText(Path.Combine(one.Out, file))), $"{file}: the same rationales sampled and kept");
        }

        Assert.That(File.ReadAllText(Path.Combine(one.Out, "round-1/estep/candidates.json")), Does.Match("\"[^\"]+\""), "the E-step sampled some rationale, so equal candidates say something");
        AssertClose(Path.Combine(two.Out, "round-1/estep/model/model.safetensors"), Path.Combine(one.Out, "round-1/estep/model/model.safetensors"), 1e-4);
        AssertClose(Path.Combine(two.Out, "final/model.safetensors"), Path.Combine(one.Out, "final/model.safetensors"), 1e-4);

        string tasks = TinyRuns.WriteHalfSolvableProblems(Path.Combine(work, "tasks.jsonl"));
        RlvrSettings Rlvr(string name) => new()
        {
            Init = TinyRuns.ModelDir,
            Tokenizer = TinyRuns.TokenizerDir,
            Problems = tasks,
            EvalProblems = tasks,
            Out = Path.Combine(work, name),
            Steps = 3,
            PromptsPerStep = 3,
            Group = 2,
            MaxNewTokens = 16,
            EvalEvery = 3,
            EvalSamples = 2,
            EvalLimit = 3,
            LearningRate = 1e-3f,
        };
        var (rlvrOne, rlvrTwo) = (Rlvr("rlvr-one"), Rlvr("rlvr-two"));
        new RlvrTrainer(rlvrOne, TextWriter.Null, false).Run();
        Ra3OnTwoRanks(["rlvr", "--config", Save(rlvrTwo)]);
        foreach (string figure in new[] { "samples_sha256", "reward", "eval_pass_at_1" })
        {
            Assert.That(Texts(rlvrTwo.Out, figure), Is.EqualTo(Texts(rlvrOne.Out, figure)), $"{figure}: the same samples and test results, step by step");
        }

        Assert.That(Figures(rlvrOne.Out, "grad_norm"), Has.Some.GreaterThan(0), "the updates moved the weights");
        AssertClose(Path.Combine(rlvrTwo.Out, "final/model.safetensors"), Path.Combine(rlvrOne.Out, "final/model.safetensors"), 1e-4);
    }

    [Test]
    public void ARankKilledMidStepEndsTheJobAndTheRunResumesToTheUninterruptedWeights()
    {
        var whole = Pretraining("whole") with { Steps = 200, SaveEvery = 20 };
        Ra3OnTwoRanks(["pretrain", "--config", Save(whole)]);

        var killed = whole with { Out = Path.Combine(work, "killed") };
        string config = Save(killed);
        var steps = new StepsLogged();
        using (var job = Ra3Child.Mpirun([["pretrain", "--config", config], ["pretrain", "--config", config]], steps.Read))
        {
            int rank1 = RankProcess(1, job);
            steps.WaitFor(50, job);  // two checkpoints written, 150 steps to go
            Signal(rank1, "KILL");
            Assert.That(job.WaitForExit(TimeSpan.FromSeconds(60)), Is.True, "the job ends instead of hanging");
            TestContext.Out.WriteLine(job.Output);
            Assert.That(job.ExitCode, Is.Not.EqualTo(0));
            Assert.That(job.Output, Does.Contain("rank 1").And.Contain("signal 9"), "mpirun names the rank that died");
        }

        Assert.That(File.Exists(Path.Combine(killed.Out, "final", "model.safetensors")), Is.False, "the run was cut short");
        Ra3OnTwoRanks(["pretrain", "--config", config, "--resume"]);
        Assert.That(File.ReadAllBytes(Path.Combine(killed.Out, "final", "model.safetensors")), Is.EqualTo(File.ReadAllBytes(Path.Combine(whole.Out, "final", "model.safetensors"))), "bit-identical final weights");
    }

    [Test]
    public void ARankThatHangsEndsTheJobAfterTheCollectiveTimeout()
    {
        var run = Pretraining("hung") with { Steps = 100_000, SaveEvery = 100_000, Parallel = new ParallelSettings { CollectiveTimeout = 5 } };
        string config = Save(run);
        var steps = new StepsLogged();
        using var job = Ra3Child.Mpirun([["pretrain", "--config", config], ["pretrain", "--config", config]], steps.Read);
        int hung = RankProcess(1, job);
        steps.WaitFor(20, job);
        Signal(hung, "STOP");
        try
        {
            Assert.That(job.WaitForExit(TimeSpan.FromSeconds(60)), Is.True, "the job ends instead of hanging");
            TestContext.Out.WriteLine(job.Output);
            Assert.That(job.ExitCode, Is.Not.EqualTo(0));
            Assert.That(job.Output, Does.Contain("ra3 pretrain: rank 0 of 2 waited 5 s, the collective timeout, for the other ranks"));
        }
        finally
        {
            Signal(hung, "KILL");  // gone already when the job's abort reached it
        }
    }

    /// <summary>The last step a job's progress lines reported (rank 0 prints one every 10 steps under mpirun).</summary>
    private sealed partial class StepsLogged
    {
        private int latest;

        public void Read(string line)
        {
            var match = StepLine().Match(line);
            if (match.Success)
            {
                Volatile.Write(ref latest, int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        public void WaitFor(int step, Ra3Child job)
        {
            var clock = Stopwatch.StartNew();
            while (Volatile.Read(ref latest) < step)
            {
                Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromMinutes(3)), $"the job did not reach step {step}");
                EndedEarly(job, TimeSpan.FromMilliseconds(100));
            }
        }

        [System.Text.RegularExpressions.GeneratedRegex(@"\] step (\d+)/")]
        private static partial System.Text.RegularExpressions.Regex StepLine();
    }

    // A tiny pre-training run on the test corpus: a global batch of 3 sequences (2 + 1 on two ranks).
    private PretrainSettings Pretraining(string name) => new()
    {
        Data = Path.Combine(work, "corpus.jsonl"),
        Out = Path.Combine(work, name),
        Hidden = 32,
        Layers = 2,
        Heads = 2,
        KvHeads = 1,
        Intermediate = 64,
        SequenceLength = 32,
        BatchSize = 3,
        Steps = 10,
        EvalEvery = 5,
        EvalSequences = 3,
        SaveEvery = 5,
    };

    // Writes a run's settings as ra3-config.json into its folder (or another) for --config; returns the file.
    private static string Save<T>(T settings, string? folder = null)
    {
        var dir = folder ?? (string)typeof(T).GetProperty("Out")!.GetValue(settings)!;
        Declared.Save(settings, dir);
        return Path.Combine(dir, Declared.ConfigFileName);
    }

    private static void Ra3OnTwoRanks(string[] args) => Ra3(Ra3Child.Mpirun([args, args]), TimeSpan.FromMinutes(8));

    private static void Ra3(Ra3Child job, TimeSpan limit)
    {
        using (job)
        {
            bool finished = job.WaitForExit(limit);
            if (!finished)
            {
                job.KillAll();
            }

            Assert.That(finished && job.ExitCode == 0, Is.True, $"mpirun {(finished ? $"exited with {job.ExitCode}" : $"ran past {limit}")}:\n{job.Output}");
        }
    }

    // Waits up to `wait` for the job, failing if it ends (its output, read only then, is complete only once it has).
    private static void EndedEarly(Ra3Child job, TimeSpan wait)
    {
        if (job.WaitForExit(wait))
        {
            Assert.Fail($"the job ended early:\n{job.Output}");
        }
    }

    // The process of ra3's rank `rank` in the job, once it has started.
    private static int RankProcess(int rank, Ra3Child job)
    {
        var clock = Stopwatch.StartNew();
        int pid;
        while ((pid = FindRank(rank, job.Id)) == 0)
        {
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromMinutes(2)), $"rank {rank} did not start");
            EndedEarly(job, TimeSpan.FromMilliseconds(50));
        }

        return pid;
    }

    // The process of rank `rank` among mpirun's descendants, or 0 (read from /proc: each process's
    // parent from its stat line, then the environments of mpirun's descendants only).
    private static int FindRank(int rank, int mpirun)
    {
        var parents = new Dictionary<int, int>();
        foreach (string dir in Directory.GetDirectories("/proc"))
        {
            try
            {
                if (int.TryParse(Path.GetFileName(dir), out int pid))
                {
                    string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                    parents[pid] = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);  // after "pid (comm) ": state, ppid
                }
            }
            catch (IOException)
            {
                // A process that ended while we looked.
            }
        }

        bool Descends(int pid) => parents.TryGetValue(pid, out int parent) && (parent == mpirun || (parent > 1 && Descends(parent)));
        foreach (int pid in parents.Keys.Where(Descends))
        {
            try
            {
                if (File.ReadAllText($"/proc/{pid}/environ").Split('\0').Contains($"OMPI_COMM_WORLD_RANK={rank}"))
                {
                    return pid;
                }
            }
            catch (IOException)
            {
            }
        }

        return 0;
    }

    private static void Signal(int pid, string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    private static string Checkpoint(string run, int step, string file) => Path.Combine(run, "checkpoints", $"step-{step:D8}", file);

    private static List<double> Figures(string run, string key) =>
        [.. File.ReadLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)![key]).Where(v => v is not null).Select(v => v!.GetValue<double>())];

    private static List<string> Texts(string run, string key) =>
        [.. File.ReadLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)![key]?.ToJsonString() ?? "-")];

    // Every float tensor of `actual` within `tolerance` of `expected`'s, relative to its norm.
    private static void AssertClose(string actual, string expected, double tolerance)
    {
        using var a = SafeTensorsFile.Open(actual);
        using var e = SafeTensorsFile.Open(expected);
        Assert.That(a.Tensors.Select(t => t.Name), Is.EquivalentTo(e.Tensors.Select(t => t.Name)), actual);
        foreach (var t in e.Tensors)
        {
            double error = Relative(a.ReadFloats(t.Name), e.ReadFloats(t.Name));
            Assert.That(error, Is.LessThanOrEqualTo(tolerance), $"{actual}: tensor {t.Name}");
        }
    }

    // The largest per-tensor relative difference between two safetensors files.
    private static double RelativeDifference(string a, string b)
    {
        using var x = SafeTensorsFile.Open(a);
        using var y = SafeTensorsFile.Open(b);
        return x.Tensors.Max(t => Relative(x.ReadFloats(t.Name), y.ReadFloats(t.Name)));
    }

    private static double Relative(float[] actual, float[] expected)
    {
        double difference = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            difference += Math.Pow(actual[i] - expected[i], 2);
            norm += Math.Pow(expected[i], 2);
        }

        return norm == 0 ? Math.Sqrt(difference) : Math.Sqrt(difference / norm);
    }
}
