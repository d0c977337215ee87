using System.Collections.Concurrent;
using NUnit.Framework;

namespace RA3.Testing;

/// <summary>
/// The random source of every randomised test: a stream per test, seeded from the run's seed and
/// the test's full name, so a test draws the same inputs whatever ran before it and whatever the
/// order. The run's seed is fixed (<see cref="Default"/>); <c>RA3_TEST_SEED=N</c> draws other inputs,
/// and the same N replays them. A test's first draw writes both seeds to its output, which
/// <c>dotnet test</c> prints with a failure.
/// </summary>
internal static class TestSeed
{
    /// <summary>The run's seed when <c>RA3_TEST_SEED</c> is not set.</summary>
    public const int Default = 20261202;

    private static readonly ConcurrentDictionary<string, Random> Streams = new(StringComparer.Ordinal);

    /// <summary>The run's seed: <c>RA3_TEST_SEED</c>, or <see cref="Default"/>.</summary>
    public static int Run { get; } = Environment.GetEnvironmentVariable("RA3_TEST_SEED") is { Length: > 0 } text
        ? (int.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out int value) ? value : throw new FormatException($"RA3_TEST_SEED must be an integer, got '{text}'"))
        : Default;

    /// <summary>The current test's stream (the fixture's, in a one-time set-up).</summary>
    public static Random Random
    {
        get
        {
            var test = TestContext.CurrentContext.Test;
            return Streams.GetOrAdd(test.ID, _ =>
            {
                int seed = Of(test.FullName);
                TestContext.Out.WriteLine($"random inputs: seed {seed} (RA3_TEST_SEED={Run} replays them)");
                return new Random(seed);
            });
        }
    }

    /// <summary>The seed of the test named <paramref name="fullName"/> in this run: FNV-1a of the name, mixed with <see cref="Run"/>.</summary>
    public static int Of(string fullName)
    {
        uint hash = 2166136261u ^ (uint)Run;
        foreach (char c in fullName)
        {
            hash = (hash ^ c) * 16777619u;
        }

        return (int)(hash & int.MaxValue);
    }
}
