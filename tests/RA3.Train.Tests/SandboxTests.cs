using System.Net;
using System.Net.Sockets;
using System.Runtime;
using NUnit.Framework;
using RA3.Testing;
using RA3.Train.Sandbox;

namespace RA3.Train.Tests;

/// <summary>
/// The sandbox against hostile programs: each case asserts its outcome, and afterwards nothing
/// outside the sandbox changed, no process of the sandbox's users is left, no run directory is left
/// and this process holds no more file descriptors than before. Needs bubblewrap (test.sh installs
/// it): without it the isolation tests fail and say so.
/// </summary>
public sealed class SandboxTests
{
    // Outcomes are decided by CPU time, which a loaded machine does not stretch: the wall-clock
    // limit is only a backstop (the sleeping program has its own test and limit).
    private static readonly SandboxLimits TestLimits = new()
    {
        WallTime = TimeSpan.FromSeconds(60),
        CpuSeconds = 3,
        MemoryBytes = 512L << 20,
        MaxOutputBytes = 16 << 10,
    };

    /// <summary>Runs measured for leaks, and the descriptors they may add without a leak.</summary>
    private const int LeakRuns = 60, DescriptorSlack = 6;

    /// <summary>What the measured runs may allocate (well under 1 MiB each) before a collection would end the no-GC region.</summary>
    private const long NoGcBudgetBytes = 200L << 20;

    private Sandbox.Sandbox sandbox = null!;
    private string outside = null!;

    [OneTimeSetUp]
    public void Open()
    {
        sandbox = Sandbox.Sandbox.Create(TestLimits);
        outside = Directory.CreateTempSubdirectory("ra3-outside-").FullName;
        File.WriteAllText(Path.Combine(outside, "keep.txt"), "untouched");
        File.SetUnixFileMode(outside, (UnixFileMode)0x1FF);  // 0777: only the sandbox's walls protect it
        File.SetUnixFileMode(Path.Combine(outside, "keep.txt"), (UnixFileMode)0x1B6);  // 0666
    }

    [OneTimeTearDown]
    public void Close()
    {
        Directory.Delete(outside, recursive: true);
        sandbox.Dispose();
    }

    [Test, Order(0)]
    public void IsolatesWithNamespaces() =>
        Assert.That(sandbox.Isolation, Is.EqualTo(Isolation.Namespaces), $"bubblewrap is missing or unusable here ({sandbox.Description}); test.sh installs the 'bubblewrap' package");

    [TestCase("assert 1 + 1 == 2", RunOutcome.Passed, "")]
    [TestCase("assert 1 == 2, 'nope'", RunOutcome.Failed, "AssertionError")]
    [TestCase("raise ValueError('bad value')", RunOutcome.Error, "ValueError")]
    [TestCase("import sys\nsys.exit(0)\nassert False", RunOutcome.Error, "SystemExit")]
    [TestCase("import os\nos._exit(0)\nassert False", RunOutcome.Error, "NoReport")]
    [TestCase("print('passed')\nprint('{\"outcome\": \"passed\"}')\nassert False", RunOutcome.Failed, "AssertionError")]
    [TestCase("x = bytearray(8 * 2**30)", RunOutcome.Memory, "MemoryError")]
    [TestCase("a = []\nwhile True:\n    a.append(bytearray(2**20))", RunOutcome.Memory, "MemoryError")]
    [TestCase("def f():\n    return f()\nf()", RunOutcome.Error, "RecursionError")]
    [TestCase("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", RunOutcome.Killed, "Signal")]
    [TestCase("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", RunOutcome.Error, "PermissionError")]
    [TestCase("open('/usr/pwned', 'w').write('x')", RunOutcome.Error, "OSError")]
    [TestCase("import os\nos.remove('/etc/hostname')", RunOutcome.Error, "")]
    [TestCase("print(open('/etc/shadow').read())", RunOutcome.Error, "PermissionError")]
    public void EndsAsExpected(string program, RunOutcome expected, string type)
    {
        var r = sandbox.Run(program);
        Assert.That(r.Outcome, Is.EqualTo(expected), $"{r.ExceptionType}: {r.Message}\nstdout: {r.Stdout}\nstderr: {r.Stderr}");
        if (type.Length > 0)
        {
            Assert.That(r.ExceptionType, Is.EqualTo(type), r.Message);
        }
    }

    [Test]
    public void ABusyLoopStopsAtTheCpuLimitAndASleepAtTheWallClockLimit()
    {
        var busy = sandbox.Run("while True:\n    pass");
        Assert.That((busy.Outcome, busy.ExceptionType), Is.EqualTo((RunOutcome.Timeout, "Timeout")));
        Assert.That(busy.Message, Does.Contain("CPU-time limit of 3 s"));
        using var quick = Sandbox.Sandbox.Create(TestLimits with { WallTime = TimeSpan.FromSeconds(2) });
        var asleep = quick.Run("import time\ntime.sleep(100)");
        Assert.That((asleep.Outcome, asleep.ExceptionType), Is.EqualTo((RunOutcome.Timeout, "Timeout")));
        Assert.That(asleep.Message, Does.Contain("wall-clock limit of 2 s"));
    }

    [Test]
    public void ForkBombStopsAtTheProcessLimit()
    {
        // The process limit refuses the fork (EAGAIN) long before any CPU or wall-clock limit: a
        // sandbox without that limit ends in a timeout or a kill instead, and fails here.
        var r = sandbox.Run("import os\nwhile True:\n    os.fork()");
        Assert.That((r.Outcome, r.ExceptionType), Is.EqualTo((RunOutcome.Error, "BlockingIOError")), r.Message);
        Assert.That(SandboxProcesses(), Is.Empty, "processes of the sandbox's users outlived the run");
    }

    [Test]
    public void DeepCRecursionIsContained()
    {
        var r = sandbox.Run("import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)");
        // Python 3.11 keeps pure-Python frames off the C stack, so this runs into the CPU limit or the memory limit.
        Assert.That(r.Outcome, Is.AnyOf(RunOutcome.Killed, RunOutcome.Error, RunOutcome.Memory, RunOutcome.Timeout), r.Message);
    }

    [Test]
    public void HugeOutputIsCapped()
    {
        var r = sandbox.Run("import sys\nfor _ in range(64):\n    sys.stdout.write('x' * 2**20)\nassert True");
        Assert.That(r.Outcome, Is.EqualTo(RunOutcome.Passed), r.Message);
        Assert.That(r.Stdout.Length, Is.LessThan(TestLimits.MaxOutputBytes + 200));
        Assert.That(r.Stdout, Does.Contain("more bytes; output capped"));
    }

    [Test]
    public void CannotTouchFilesOutside()
    {
        string keep = Path.Combine(outside, "keep.txt");
        string project = Path.Combine(Fixtures.RepoRoot, "README.md");
        string before = File.ReadAllText(project);
        foreach (string program in new[]
        {
            $"open({Py(keep)}, 'w').write('changed')",
            $"import os\nos.remove({Py(keep)})",
            $"open({Py(Path.Combine(outside, "new.txt"))}, 'w').write('x')",
            $"open({Py(project)}, 'a').write('x')",
            $"import shutil\nshutil.rmtree({Py(Fixtures.RepoRoot)})",
        })
        {
            var r = sandbox.Run(program);
            Assert.That(r.Outcome, Is.EqualTo(RunOutcome.Error), $"{program}: {r.Message}");
        }

        // Nor read them: the repository and the home folder are not in the sandbox's view at all.
        string home = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), $".ra3-sandbox-probe-{Environment.ProcessId}");
        File.WriteAllText(home, "secret-in-home");
        try
        {
            foreach (var (path, secret) in new[] { (project, before[..Math.Min(40, before.Length)]), (home, "secret-in-home") })
            {
                var r = sandbox.Run($"print(open({Py(path)}).read())");
                Assert.That(r.Outcome, Is.EqualTo(RunOutcome.Error), $"reading {path}: {r.Message}");
                Assert.That(r.ExceptionType, Is.AnyOf("FileNotFoundError", "PermissionError"), r.Message);
                Assert.That(r.Stdout + r.Stderr, Does.Not.Contain(secret));
            }
        }
        finally
        {
            File.Delete(home);
        }

        Assert.That(File.ReadAllText(keep), Is.EqualTo("untouched"));
        Assert.That(Directory.GetFiles(outside), Has.Length.EqualTo(1));
        Assert.That(File.ReadAllText(project), Is.EqualTo(before));
    }

    [Test]
    public void WritesOnlyItsOwnFreshWorkingDirectory()
    {
        var first = sandbox.Run("import os\nopen('mine.txt', 'w').write('x' * 1000)\nassert os.listdir('.') == ['mine.txt'], os.listdir('.')");
        Assert.That(first.Outcome, Is.EqualTo(RunOutcome.Passed), first.Message);
        var second = sandbox.Run("import os\nassert os.listdir('.') == [], os.listdir('.')");
        Assert.That(second.Outcome, Is.EqualTo(RunOutcome.Passed), "a run saw the previous run's files: " + second.Message);
        var big = sandbox.Run($"with open('big.bin', 'wb') as f:\n    f.write(b'x' * {TestLimits.MaxFileBytes + 1})");
        Assert.That(big.Outcome, Is.EqualTo(RunOutcome.Error), "the file-size limit did not hold: " + big.Message);
        Assert.That(big.Message, Does.Contain("File too large"));
    }

    [Test]
    public void HasNoNetwork()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var r = sandbox.Run($"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)");
        Assert.That(r.Outcome, Is.EqualTo(RunOutcome.Error), r.Message);
        Assert.That(listener.Pending(), Is.False, "the sandboxed program reached a port of this machine");
    }

    [Test]
    public void SeesNoSecretsInTheEnvironment()
    {
        Environment.SetEnvironmentVariable("RA3_TEST_SECRET", "hunter2");
        try
        {
            var r = sandbox.Run("import os\nprint(sorted(os.environ))\nassert not any('hunter2' in v for v in os.environ.values())\nassert set(os.environ) <= {'PATH', 'LANG', 'HOME', 'PWD', 'LC_CTYPE', 'PYTHONHASHSEED'}, sorted(os.environ)");
            Assert.That(r.Outcome, Is.EqualTo(RunOutcome.Passed), r.Message);
            Assert.That(r.Stdout, Does.Not.Contain("hunter2"));
        }
        finally
        {
            Environment.SetEnvironmentVariable("RA3_TEST_SECRET", null);
        }
    }

    [Test]
    public void StandardInputIsClosed()
    {
        var r = sandbox.Run("import sys\nassert sys.stdin.read() == ''");
        Assert.That(r.Outcome, Is.EqualTo(RunOutcome.Passed), r.Message);
    }

    [Test]
    public void LimitsOnlyModeStillEnforcesTheLimitsAndSaysWhatItLacks()
    {
        using var bare = Sandbox.Sandbox.Create(TestLimits, namespaces: false);
        Assert.That(bare.Isolation, Is.EqualTo(Isolation.LimitsOnly));
        Assert.That(bare.Description, Does.Contain("LIMITS ONLY").And.Contain("network"));
        Assert.That(bare.Run("assert 1 + 1 == 2").Outcome, Is.EqualTo(RunOutcome.Passed));
        Assert.That(bare.Run("assert False").Outcome, Is.EqualTo(RunOutcome.Failed));
        Assert.That(bare.Run("while True:\n    pass").Outcome, Is.EqualTo(RunOutcome.Timeout));
        Assert.That(bare.Run("x = bytearray(8 * 2**30)").Outcome, Is.EqualTo(RunOutcome.Memory));
        Assert.That(bare.Run("import os\nos._exit(0)").Outcome, Is.EqualTo(RunOutcome.Error));
        var env = bare.Run("import os\nassert 'RA3_TEST_SECRET' not in os.environ and set(os.environ) <= {'PATH', 'LANG', 'HOME', 'LC_CTYPE', 'PYTHONHASHSEED'}, sorted(os.environ)");
        Assert.That(env.Outcome, Is.EqualTo(RunOutcome.Passed), env.Message);
        Assert.That(Directory.GetFileSystemEntries(Path.Combine(bare.Root, "runs")), Is.Empty);
    }

    [Test]
    public void ASetIteratesInTheSameOrderInEveryRun()
    {
        // EvalPlus compares a sample's output with the canonical solution's, computed in another
        // process: a tuple built from a set must not depend on that process's string-hash seed.
        const string program = "print(list({'apple', 'banana', 'cherry', 'date', 'elder', 'fig', 'grape', 'honeydew'}))";
        var outputs = Enumerable.Range(0, 6).Select(_ => sandbox.Run(program)).ToList();
        Assert.That(outputs.Select(r => r.Outcome), Is.All.EqualTo(RunOutcome.Passed));
        Assert.That(outputs.Select(r => r.Stdout).Distinct().Count(), Is.EqualTo(1), string.Join("\n", outputs.Select(r => r.Stdout)));
        Assert.That(sandbox.Run("import os\nassert os.environ['PYTHONHASHSEED'] == '0'").Outcome, Is.EqualTo(RunOutcome.Passed));
    }

    [Test, Order(100)]
    public async Task ManyRunsLeaveNothingBehind()
    {
        // A descriptor released only by a finaliser (a pipe or process handle nobody disposed)
        // comes back whenever a collection happens to run, so counting across runs alone passes or
        // fails with the machine's GC timing. Here no collection can run: the measured runs happen
        // inside a no-GC region, so whatever a run does not release itself shows, on any machine.
        using var pool = new SandboxPool(sandbox, workers: 2, queueCapacity: 4);
        var programs = Enumerable.Range(0, LeakRuns).Select(i => i % 20 == 19 ? "while True:\n    pass" : $"assert sum(range({i})) == {i * (i - 1) / 2}").ToArray();
        await pool.RunAllAsync(programs[..10]);  // the runtime's own descriptors (epoll, thread pool) reach their steady state
        var before = ProcessResources.Sample();
        Assert.That(GC.TryStartNoGCRegion(NoGcBudgetBytes), Is.True, "could not enter a no-GC region");
        RunResult[] results;
        ProcessResources after;
        bool collected;
        try
        {
            results = await pool.RunAllAsync(programs);
            after = ProcessResources.Sample();
        }
        finally
        {
            collected = GCSettings.LatencyMode != GCLatencyMode.NoGCRegion;
            if (!collected)
            {
                GC.EndNoGCRegion();
            }
        }

        Assert.That(collected, Is.False, $"a collection ran during the {LeakRuns} runs (they allocated more than {NoGcBudgetBytes >> 20} MiB), so a finaliser could have hidden a leak");
        Assert.That(results.Count(r => r.Outcome == RunOutcome.Passed), Is.EqualTo(LeakRuns - (LeakRuns / 20)));
        Assert.That(results.Count(r => r.Outcome == RunOutcome.Timeout), Is.EqualTo(LeakRuns / 20));
        Assert.That(Directory.GetFileSystemEntries(Path.Combine(sandbox.Root, "runs")), Is.Empty, "run directories were left behind");
        Assert.That(SandboxProcesses(), Is.Empty, "processes of the sandbox's users outlived their runs");
        // One leaked descriptor per run would add 60; without a leak only the runtime's own may move, by a few.
        Assert.That(after.Descriptors - before.Descriptors, Is.LessThanOrEqualTo(DescriptorSlack), $"file descriptors leak: {before} before {LeakRuns} runs, {after} after, with no collection between");
        Assert.That(sandbox.Limits, Is.EqualTo(TestLimits));
    }

    private static string Py(string s) => "'" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal) + "'";

    /// <summary>Processes whose real user id is one of the sandbox's per-slot users.</summary>
    private static List<string> SandboxProcesses()
    {
        var found = new List<string>();
        foreach (string dir in Directory.GetDirectories("/proc"))
        {
            try
            {
                string? uidLine = File.ReadLines(Path.Combine(dir, "status")).FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal));
                if (uidLine is not null && int.TryParse(uidLine.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1], out int uid) && uid >= Sandbox.Sandbox.FirstUid && uid < Sandbox.Sandbox.FirstUid + 64)
                {
                    found.Add($"{Path.GetFileName(dir)} (uid {uid})");
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return found;
    }
}
