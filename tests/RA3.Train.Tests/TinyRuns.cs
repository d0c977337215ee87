using System.Diagnostics;
using System.Text;
using RA3.Testing;

namespace RA3.Train.Tests;

/// <summary>
/// What the end-to-end training tests share: the tiny Hugging Face llama fixture and its BPE
/// tokenizer, RLVR problems an untrained model solves about half the time, and real <c>ra3</c>
/// child processes.
/// </summary>
internal static class TinyRuns
{
    /// <summary>The tiny llama fixture.</summary>
    public static readonly string ModelDir = Fixtures.SharedPath("fixtures", "hf", "llama-tiny");

    /// <summary>Its 512-token BPE tokenizer.</summary>
    public static readonly string TokenizerDir = Fixtures.SharedPath("fixtures", "hf", "tokenizer-bpe512");

    /// <summary>
    /// Writes four plain problems that an untrained model solves about half the time: the completion
    /// is a string literal, and the test asks its length not to be 1 modulo m. So the rewards differ
    /// within a group and every update moves the weights (the procedural tasks give reward 0).
    /// </summary>
    public static string WriteHalfSolvableProblems(string path)
    {
        File.WriteAllLines(path, Enumerable.Range(2, 4).Select(m => $$"""{"task_id": "mod-{{m}}", "prompt": "s = \"\"\"", "tests": "\"\"\"\nassert len(s.strip()) % {{m}} != 1"}"""));
        return path;
    }
}

/// <summary>
/// A real <c>ra3</c> process started with some arguments, both outputs read as they come (a full pipe
/// would block it); <paramref name="onLine"/> sees each line of standard output.
/// </summary>
internal sealed class Ra3Child : IDisposable
{
    private readonly Process process;
    private readonly StringBuilder stdout = new();
    private readonly Task reading;
    private readonly Task<string> stderr;

    public Ra3Child(IEnumerable<string> args, Action<string>? onLine = null)
        : this(Executable, args, onLine)
    {
    }

    private Ra3Child(string program, IEnumerable<string> args, Action<string>? onLine)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (string a in args)
        {
            start.ArgumentList.Add(a);
        }

        process = Process.Start(start)!;
        process.StandardInput.Close();
        stderr = process.StandardError.ReadToEndAsync();
        reading = Task.Run(async () =>
        {
            while (await process.StandardOutput.ReadLineAsync() is { } line)
            {
                stdout.AppendLine(line);
                onLine?.Invoke(line);
            }
        });
    }

    /// <summary>The ra3 program the tests run (the build's apphost).</summary>
    public static string Executable => Path.Combine(AppContext.BaseDirectory, "ra3");

    /// <summary>
    /// <c>mpirun</c> starting one ra3 rank per element of <paramref name="ranks"/>, each with its own
    /// arguments (identical ones are one <c>-np N</c> block); <c>--allow-run-as-root</c> when the
    /// tests run as root, as they do in CI.
    /// </summary>
    public static Ra3Child Mpirun(IReadOnlyList<string[]> ranks, Action<string>? onLine = null)
    {
        var args = new List<string>();
        if (Environment.UserName == "root")
        {
            args.Add("--allow-run-as-root");
        }

        // Consecutive ranks with the same arguments share one application context (-np N).
        for (int r = 0; r < ranks.Count;)
        {
            int n = 1;
            while (r + n < ranks.Count && ranks[r + n].SequenceEqual(ranks[r]))
            {
                n++;
            }

            if (r > 0)
            {
                args.Add(":");
            }

            args.AddRange(["-np", n.ToString(System.Globalization.CultureInfo.InvariantCulture), Executable, .. ranks[r]]);
            r += n;
        }

        return new Ra3Child("mpirun", args, onLine);
    }

    /// <summary>The process id.</summary>
    public int Id => process.Id;

    /// <summary>Its exit status (once it has exited).</summary>
    public int ExitCode => process.ExitCode;

    /// <summary>Standard error, complete once the process has exited.</summary>
    public string Stderr => stderr.Result;

    /// <summary>Both outputs, complete once the process has exited.</summary>
    public string Output
    {
        get
        {
            reading.Wait(TimeSpan.FromSeconds(10));
            return stdout + stderr.Result;
        }
    }

    /// <summary>Waits up to <paramref name="limit"/> for the process to exit.</summary>
    public bool WaitForExit(TimeSpan limit) => process.WaitForExit(limit);

    /// <summary>SIGKILL, the process alone (as the out-of-memory killer does), and waits for it.</summary>
    public void Kill()
    {
        process.Kill(entireProcessTree: false);
        process.WaitForExit();
    }

    /// <summary>SIGKILL to the process and everything it started (an mpirun job that ran past its limit), and waits for it.</summary>
    public void KillAll()
    {
        process.Kill(entireProcessTree: true);
        process.WaitForExit();
    }

    public void Dispose() => process.Dispose();
}
