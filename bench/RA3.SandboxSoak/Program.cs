using System.Diagnostics;
using System.Globalization;
using RA3.Train.Sandbox;

// dotnet run --project bench/RA3.SandboxSoak -c Release -- [--runs 10000] [--every 1000] [--workers 0]
//
// Runs a mix of programs — passing, failing, raising, flooding stdout past the cap, and every
// hundredth spinning until its CPU limit kills it — through one SandboxPool, and prints a table
// row every --every runs: open descriptors, threads, resident memory, collections so far. Nothing
// forces a collection, so a resource released only by a finaliser shows as a saw-tooth or a climb.
int runs = Option("--runs", 10_000), every = Option("--every", 1_000), workers = Option("--workers", 0);
var limits = new SandboxLimits { WallTime = TimeSpan.FromSeconds(5), CpuSeconds = 1, MaxOutputBytes = 16 << 10 };
using var sandbox = Sandbox.Create(limits);
using var pool = new SandboxPool(sandbox, workers);
Console.WriteLine(sandbox.Description);
Console.WriteLine($"{runs:N0} runs on {pool.Workers} workers, sampled every {every:N0}; .NET {Environment.Version}, {Environment.ProcessorCount} cores");
Console.WriteLine();
Console.WriteLine("| runs | descriptors | threads | RSS MiB | GCs (gen 0/1/2) | runs/s | outcomes so far |");
Console.WriteLine("|---:|---:|---:|---:|---|---:|---|");
var outcomes = new Dictionary<RunOutcome, int>();
var clock = Stopwatch.StartNew();
Row(0, TimeSpan.Zero);
for (int done = 0; done < runs;)
{
    int count = Math.Min(every, runs - done);
    var start = clock.Elapsed;
    var results = await pool.RunAllAsync([.. Enumerable.Range(done, count).Select(ProgramFor)]);
    for (int i = 0; i < count; i++)
    {
        var r = results[i];
        outcomes[r.Outcome] = outcomes.GetValueOrDefault(r.Outcome) + 1;
        if (r.Outcome != Expected(done + i))
        {
            Console.Error.WriteLine($"run {done + i}: expected {Expected(done + i)}, got {r.Outcome} ({r.ExceptionType}: {r.Message})");
            return 1;
        }
    }

    done += count;
    Row(done, clock.Elapsed - start);
}

Console.WriteLine();
Console.WriteLine($"{runs:N0} runs in {clock.Elapsed.TotalMinutes:0.0} min; every outcome as expected");
return 0;

void Row(int done, TimeSpan took)
{
    var now = ProcessResources.Sample();
    string rate = took > TimeSpan.Zero ? (every / took.TotalSeconds).ToString("0.0", CultureInfo.InvariantCulture) : "";
    string seen = string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Key} {o.Value}"));
    Console.WriteLine($"| {done:N0} | {now.Descriptors} | {now.Threads} | {now.ResidentBytes >> 20} | {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)} | {rate} | {seen} |");
}

// The mix of programs, by run index: mostly unit-test-sized programs, some failing, a flood of output, a spinner.
static string ProgramFor(int i) => (i % 100) switch
{
    99 => "while True:\n    pass",
    _ when i % 10 == 3 => $"assert {i} % 2 == {(i + 1) % 2}, 'wrong parity'",
    _ when i % 10 == 5 => $"raise ValueError('bad input {i}')",
    _ when i % 10 == 7 => "import sys\nsys.stdout.write('x' * 100000)\nprint()",
    _ => $"def f(n):\n    return sum(range(n))\nassert f({i % 500}) == {i % 500 * ((i % 500) - 1) / 2}",
};

static RunOutcome Expected(int i) => (i % 100) switch
{
    99 => RunOutcome.Timeout,
    _ when i % 10 == 3 => RunOutcome.Failed,
    _ when i % 10 == 5 => RunOutcome.Error,
    _ => RunOutcome.Passed,
};

int Option(string name, int fallback)
{
    int at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
}
