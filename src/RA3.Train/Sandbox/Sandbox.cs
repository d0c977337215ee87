using System.Diagnostics;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace RA3.Train.Sandbox;

/// <summary>How much a <see cref="Sandbox"/> isolates its programs.</summary>
public enum Isolation
{
    /// <summary>
    /// bubblewrap: a read-only view of /usr and /etc only (no project files, no home directories),
    /// a private size-limited /tmp as the working directory, no network (own network namespace), own
    /// PID, IPC and UTS namespaces, killed with the evaluator; plus the resource limits and, when
    /// the evaluator runs as root, an unprivileged user id per worker.
    /// </summary>
    Namespaces,

    /// <summary>
    /// No bubblewrap: resource limits and (as root) the unprivileged user id only. The program can
    /// read whatever that user can read and can reach the network. Said on every <c>ra3 eval</c>.
    /// </summary>
    LimitsOnly,
}

/// <summary>
/// Runs untrusted Python programs (model-written code and its tests) one process tree each:
/// wall-clock and CPU-time limits, address-space, process-count, file-size and open-file limits,
/// output capped, a fresh working directory removed afterwards, an environment of PATH, LANG,
/// HOME and a fixed PYTHONHASHSEED only, standard input closed. <see cref="Run"/> never throws: every failure is an outcome.
/// Thread-safe; give concurrent runs distinct <c>slot</c>s (a slot is a user id when run as root).
/// </summary>
public sealed class Sandbox : IDisposable
{
    /// <summary>First user id of the per-slot unprivileged users (as root).</summary>
    public const int FirstUid = 60000;

    private const int TailBytes = 4096;

    /// <summary>
    /// Python's string-hash seed in every run: a set's iteration order then does not change from
    /// one process to the next, so an expected output computed in one run (EvalPlus's, from the
    /// canonical solution) compares equal to a sample's computed in another, as evaluation
    /// harnesses fix it. Python reads it only from the environment, so the interpreter runs with
    /// <c>-s</c> (no user site) rather than <c>-I</c>, which would ignore it: the environment is
    /// ours anyway (cleared, then PATH, LANG, HOME and this).
    /// </summary>
    private const string HashSeed = "0";
    private const int SigXcpu = 24;
    private readonly string root, harness, runs;
    private readonly string? bwrap;
    private readonly bool asRoot;

    private Sandbox(SandboxLimits limits, string? bwrap)
    {
        Limits = limits;
        this.bwrap = bwrap;
        asRoot = GetEuid() == 0;
        root = Directory.CreateTempSubdirectory("ra3-sandbox-").FullName;
        harness = Path.Combine(root, "harness");
        runs = Path.Combine(root, "runs");
        Directory.CreateDirectory(harness);
        Directory.CreateDirectory(runs);
        const UnixFileMode Traverse = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
        const UnixFileMode Readable = Traverse | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        File.SetUnixFileMode(root, Traverse);
        File.SetUnixFileMode(runs, Traverse);
        File.SetUnixFileMode(harness, Readable);
        string driver = Path.Combine(harness, "driver.py");
        using (var resource = Assembly.GetExecutingAssembly().GetManifestResourceStream("RA3.Train.Sandbox.driver.py") ?? throw new InvalidOperationException("the sandbox driver is not embedded in ra3"))
        using (var file = File.Create(driver))
        {
            resource.CopyTo(file);
        }

        File.SetUnixFileMode(driver, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
    }

    /// <summary>The limits of every run.</summary>
    public SandboxLimits Limits { get; }

    /// <summary>What isolates the programs here.</summary>
    public Isolation Isolation => bwrap is null ? Isolation.LimitsOnly : Isolation.Namespaces;

    /// <summary>One line for logs: the isolation in force and what it does not protect.</summary>
    public string Description => Isolation == Isolation.Namespaces
        ? $"sandbox: bubblewrap namespaces (read-only /usr and /etc, private /tmp, no network){(asRoot ? ", unprivileged uid per worker" : "")}, limits {Limits.WallTime.TotalSeconds:0.#} s wall, {Limits.CpuSeconds} s CPU, {Limits.MemoryBytes >> 20} MiB memory, {Limits.MaxProcesses} processes"
        : "sandbox: LIMITS ONLY (bubblewrap not found or not usable: install the 'bubblewrap' package) — programs can read what this user can read and can use the network";

    /// <summary>The directory holding this sandbox's run directories (removed on dispose).</summary>
    public string Root => root;

    /// <summary>
    /// A sandbox with bubblewrap when it is installed and works here, else limits only;
    /// <paramref name="namespaces"/> = false asks for limits only (to test that mode, or where
    /// bubblewrap misbehaves).
    /// </summary>
    public static Sandbox Create(SandboxLimits? limits = null, bool namespaces = true)
    {
        limits ??= new SandboxLimits();
        string? found = namespaces ? FindExecutable("bwrap") : null;
        var sandbox = new Sandbox(limits, found);
        // The probe runs in this rank's first slot: under mpirun, each rank of a host has its own user ids (SandboxPool).
        if (found is not null && sandbox.Run("pass", slot: Kernels.Distributed.Launch.LocalRank * Kernels.Distributed.Launch.CoresPerRank).Outcome != RunOutcome.Passed)
        {
            sandbox.Dispose();
            sandbox = new Sandbox(limits, null);
        }

        return sandbox;
    }

    /// <summary>Runs <paramref name="program"/> (Python source) in slot <paramref name="slot"/>; never throws.</summary>
    public RunResult Run(string program, int slot = 0, CancellationToken cancel = default) => RunAsync(program, slot, null, cancel).GetAwaiter().GetResult();

    /// <summary>
    /// Runs <paramref name="program"/> (Python source) in slot <paramref name="slot"/> under
    /// <paramref name="limits"/> (default <see cref="Limits"/>); never throws.
    /// </summary>
    public async Task<RunResult> RunAsync(string program, int slot = 0, SandboxLimits? limits = null, CancellationToken cancel = default)
    {
        limits ??= Limits;
        var clock = Stopwatch.StartNew();
        string dir = Path.Combine(runs, $"{slot}-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(dir);
            File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute | (Isolation == Isolation.LimitsOnly ? UnixFileMode.OtherWrite | UnixFileMode.GroupWrite : 0));
            string programPath = Path.Combine(dir, "program.py");
            await File.WriteAllTextAsync(programPath, program, new UTF8Encoding(false), CancellationToken.None).ConfigureAwait(false);
            File.SetUnixFileMode(programPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            string nonce = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
            return await Execute(StartInfo(dir, slot, nonce, limits), nonce, clock, limits, cancel).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new RunResult(RunOutcome.Error, "SandboxError", e.Message, clock.Elapsed, -1, 0, "", "");
        }
        finally
        {
            TryDelete(dir);
        }
    }

    /// <summary>Removes the run directories.</summary>
    public void Dispose() => TryDelete(root);

    private ProcessStartInfo StartInfo(string dir, int slot, string nonce, SandboxLimits limits)
    {
        var start = new ProcessStartInfo
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment.Clear();
        var a = start.ArgumentList;
        string programPath;
        if (bwrap is not null)
        {
            start.FileName = bwrap;
            foreach (string top in new[] { "bin", "sbin", "lib", "lib32", "lib64", "libx32" })
            {
                var info = new DirectoryInfo("/" + top);
                if (info.LinkTarget is { } target)
                {
                    a.Add("--symlink");
                    a.Add(target);
                    a.Add("/" + top);
                }
                else if (info.Exists)
                {
                    a.Add("--ro-bind");
                    a.Add("/" + top);
                    a.Add("/" + top);
                }
            }

            foreach (string arg in (string[])["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev",
                "--perms", "1777", "--size", limits.WorkingDirectoryBytes.ToString(Inv), "--tmpfs", "/tmp",
                "--ro-bind", harness, "/harness", "--ro-bind", dir, "/box",
                "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--new-session", "--clearenv",
                "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8", "--setenv", "HOME", "/tmp", "--setenv", "PYTHONHASHSEED", HashSeed, "--chdir", "/tmp"])
            {
                a.Add(arg);
            }

            if (!asRoot)
            {
                a.Add("--unshare-user");
            }

            a.Add("--");
            programPath = "/box/program.py";
        }
        else
        {
            start.FileName = "/usr/bin/env";
            start.WorkingDirectory = dir;
            start.Environment["PATH"] = "/usr/bin:/bin";
            start.Environment["LANG"] = "C.UTF-8";
            start.Environment["HOME"] = dir;
            start.Environment["PYTHONHASHSEED"] = HashSeed;
            programPath = Path.Combine(dir, "program.py");
        }

        if (asRoot)
        {
            string uid = (FirstUid + slot).ToString(Inv);
            foreach (string arg in (string[])["setpriv", "--reuid", uid, "--regid", uid, "--clear-groups", "--no-new-privs", "--bounding-set", "-all", "--inh-caps", "-all", "--"])
            {
                a.Add(arg);
            }
        }

        foreach (string arg in (string[])["prlimit", $"--as={limits.MemoryBytes}", $"--cpu={limits.CpuSeconds}:{limits.CpuSeconds + 1}", $"--nproc={limits.MaxProcesses}",
            $"--fsize={limits.MaxFileBytes}", $"--nofile={limits.MaxOpenFiles}", "--core=0", "--",
            limits.Python, "-s", "-B", bwrap is null ? Path.Combine(harness, "driver.py") : "/harness/driver.py", nonce, programPath])
        {
            a.Add(arg);
        }

        return start;
    }

    private static async Task<RunResult> Execute(ProcessStartInfo start, string nonce, Stopwatch clock, SandboxLimits limits, CancellationToken cancel)
    {
        using var process = new Process { StartInfo = start };
        process.Start();
        process.StandardInput.Close();

        // Once a redirected stream has been read, Process.Dispose leaves it to the caller (it closes
        // only streams never touched), so without these two the pipes' descriptors would wait for
        // a finaliser: two per run, an EMFILE after enough runs between collections.
        using StreamReader outPipe = process.StandardOutput, errPipe = process.StandardError;
        var stdout = Drain(outPipe.BaseStream, limits.MaxOutputBytes);
        var stderr = Drain(errPipe.BaseStream, limits.MaxOutputBytes);
        bool timedOut = false, cancelled = false;
        using (var limit = CancellationTokenSource.CreateLinkedTokenSource(cancel))
        {
            limit.CancelAfter(limits.WallTime);
            try
            {
                await process.WaitForExitAsync(limit.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                cancelled = cancel.IsCancellationRequested;
                timedOut = !cancelled;
                process.Kill(entireProcessTree: true);  // bubblewrap's PID namespace takes every descendant with it
                await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }

        // The pipes close when the last process holding them is gone; the namespace guarantees that.
        var (outText, outTail) = await stdout.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false);
        var (errText, _) = await stderr.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false);
        int exit = process.ExitCode, signal = exit > 128 ? exit - 128 : 0;
        TimeSpan wall = clock.Elapsed;
        string marker = "\n" + nonce + " ";
        int at = outTail.LastIndexOf(marker, StringComparison.Ordinal);
        string source = outTail;
        if (at < 0)
        {
            source = outText;
            at = outText.LastIndexOf(marker, StringComparison.Ordinal);
        }

        string printed = at >= 0 && source == outText ? outText[..at] : outText;
        if (!timedOut && !cancelled && at >= 0 && Report(source[(at + marker.Length)..]) is { } report)
        {
            return new RunResult(report.Outcome, report.Type, report.Message, wall, exit, signal, printed, errText);
        }

        (RunOutcome outcome, string type, string message) = (timedOut, cancelled) switch
        {
            (true, _) => (RunOutcome.Timeout, "Timeout", $"wall-clock limit of {limits.WallTime.TotalSeconds:0.#} s"),
            (_, true) => (RunOutcome.Killed, "Cancelled", "the evaluation was cancelled"),
            _ when signal == SigXcpu => (RunOutcome.Timeout, "Timeout", $"CPU-time limit of {limits.CpuSeconds} s"),
            _ when signal > 0 => (RunOutcome.Killed, "Signal", $"killed by signal {signal}"),
            _ when errText.Contains("MemoryError", StringComparison.Ordinal) => (RunOutcome.Memory, "MemoryError", "out of memory before the harness could report"),
            _ => (RunOutcome.Error, "NoReport", $"exited with status {exit} without the harness's report (an early os._exit, or the harness was disturbed)"),
        };
        return new RunResult(outcome, type, message, wall, exit, timedOut || cancelled ? 9 : signal, printed, errText);
    }

    private static (RunOutcome Outcome, string Type, string Message)? Report(string line)
    {
        int end = line.IndexOf('\n', StringComparison.Ordinal);
        try
        {
            using var json = JsonDocument.Parse(end >= 0 ? line[..end] : line);
            var r = json.RootElement;
            RunOutcome? outcome = r.GetProperty("outcome").GetString() switch
            {
                "passed" => RunOutcome.Passed,
                "failed" => RunOutcome.Failed,
                "error" => RunOutcome.Error,
                "memory" => RunOutcome.Memory,
                _ => null,
            };
            return outcome is null ? null : (outcome.Value, r.GetProperty("type").GetString() ?? "", r.GetProperty("message").GetString() ?? "");
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Reads a stream to its end, keeping the first <paramref name="cap"/> bytes and the last 4 KiB.</summary>
    private static async Task<(string Head, string Tail)> Drain(Stream stream, int cap)
    {
        var head = new MemoryStream();
        var tail = new byte[TailBytes];
        long total = 0;
        var buffer = new byte[16 << 10];
        int read;
        while ((read = await stream.ReadAsync(buffer).ConfigureAwait(false)) > 0)
        {
            int keep = (int)Math.Clamp(cap - head.Length, 0, read);
            head.Write(buffer, 0, keep);
            for (int i = Math.Max(0, read - TailBytes); i < read; i++)
            {
                tail[(total + i) % TailBytes] = buffer[i];
            }

            total += read;
        }

        int tailLength = (int)Math.Min(total, TailBytes);
        var ordered = new byte[tailLength];
        for (int i = 0; i < tailLength; i++)
        {
            ordered[i] = tail[(total - tailLength + i) % TailBytes];
        }

        string headText = Encoding.UTF8.GetString(head.GetBuffer(), 0, (int)head.Length);
        if (total > head.Length)
        {
            headText += $"\n[... {total - head.Length} more bytes; output capped at {cap} ...]\n";
        }

        return (headText, Encoding.UTF8.GetString(ordered));
    }

    private static string? FindExecutable(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    private static void TryDelete(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static readonly IFormatProvider Inv = System.Globalization.CultureInfo.InvariantCulture;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint GetEuid();
}
