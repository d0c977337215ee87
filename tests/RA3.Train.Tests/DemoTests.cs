using System.Text.Json;
using NUnit.Framework;
using RA3.Train.Demo;

namespace RA3.Train.Tests;

/// <summary>
/// <c>ra3 demo</c> end to end at a toy size (a few steps of every stage): every stage leaves its
/// output, the report names every section and its PNGs are real images, and a second run reuses
/// everything (each stage skipped because its output exists).
/// </summary>
public sealed class DemoTests
{
    [Test]
    public void TheWholePipelineRunsAndWritesItsReportWithPlots()
    {
        string dir = Directory.CreateTempSubdirectory("ra3-demo-").FullName;
        try
        {
            var settings = new DemoSettings
            {
                Out = dir,
                Seeds = 2,
                PretrainSteps = 6,
                PretrainFunctions = 60,
                Traces = 6,
                HeldOutProblems = 3,
                Samples = 2,
                CurveProblems = 2,
                Midtrain = new DemoSettings().Midtrain with { Rounds = 2, MStepSteps = 2, Group = 2 },
                Rlvr = new DemoSettings().Rlvr with { Steps = 2, Group = 2, EvalEvery = 1, SaveEvery = 1 },
            };
            string report = new DemoRunner(settings, TextWriter.Null, false).Run();
            string text = File.ReadAllText(report);
            foreach (string section in new[] { "pass@k", "code-token cross-entropy", "log Z, the marginal-likelihood bound and the think rate", "lines per abstraction versus c", "RLVR from each initialisation", "Paired differences", "RA3 − NTP (2 seed(s))", "3 held-out problems, 2 seeds", "area under the curve", "steps to reach NTP-init's final" })
            {
                Assert.That(text, Does.Contain(section));
            }

            foreach (string png in new[] { "pass_at_k", "code_ce", "elbo", "think_rate", "abstraction_vs_c", "rlvr", "rlvr_reward" })
            {
                byte[] bytes = File.ReadAllBytes(Path.Combine(dir, png + ".png"));
                Assert.That(bytes.Take(8), Is.EqualTo(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }), $"{png}.png is a PNG");
                Assert.That(bytes.Length, Is.GreaterThan(10_000), $"{png}.png has a drawing in it");
            }

            // The figures behind the report are numbers: a NaN anywhere would still draw a section and a PNG.
            foreach (string seed in new[] { "seed-1", "seed-2" })
            {
                foreach (string method in new[] { "ra3", "ntp" })
                {
                    using var eval = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, seed, $"eval-{method}.json")));
                    Assert.That(eval.RootElement.GetProperty("pass_at_1").GetDouble(), Is.InRange(0.0, 1.0), $"{seed} {method} pass@1");
                    Assert.That(eval.RootElement.GetProperty("per_problem").GetArrayLength(), Is.EqualTo(3), "one row per held-out problem");
                    foreach (string line in File.ReadLines(Path.Combine(dir, seed, method, "metrics.jsonl")))
                    {
                        using var round = JsonDocument.Parse(line);
                        foreach (string key in method == "ra3" ? new[] { "log_z", "log_z_after_mstep", "log_marginal_bound_per_line", "code_ce_heldout", "mstep_loss", "think_rate" } : ["code_ce_heldout", "mstep_loss"])
                        {
                            Assert.That(round.RootElement.GetProperty(key).ValueKind, Is.EqualTo(JsonValueKind.Number), $"{seed}/{method} {key} is a finite number (null marks a non-finite one)");
                        }
                    }
                }
            }

            Assert.That(text, Does.Not.Contain("NaN").And.Not.Contain("Infinity"), "the report prints no undefined figure, and a curve that never reaches its target as ∞");
            Assert.That(Directory.Exists(Path.Combine(dir, "seed-2", "rlvr-ra3")), Is.False, "RLVR runs on the first seed only by default");

            // One protocol: each RLVR curve's step 0 is the evaluation table's figure on the curve's problems.
            foreach (string method in new[] { "base", "ntp", "ra3" })
            {
                using var table = JsonDocument.Parse(File.ReadAllText(method == "base" ? Path.Combine(dir, "eval-base.json") : Path.Combine(dir, "seed-1", $"eval-{method}.json")));
                int[] tableCorrect = [.. table.RootElement.GetProperty("per_problem").EnumerateArray().Take(2).Select(r => r.GetProperty("c").GetInt32())];
                using var first = JsonDocument.Parse(File.ReadLines(Path.Combine(dir, "seed-1", $"rlvr-{method}", "metrics.jsonl")).First());
                Assert.That(first.RootElement.GetProperty("eval_correct").EnumerateArray().Select(c => c.GetInt32()), Is.EqualTo(tableCorrect), $"{method}: the curve starts where the table is");
            }
            var stamp = File.GetLastWriteTimeUtc(Path.Combine(dir, "seed-1", "eval-ra3.json"));
            new DemoRunner(settings, TextWriter.Null, false).Run();
            Assert.That(File.GetLastWriteTimeUtc(Path.Combine(dir, "seed-1", "eval-ra3.json")), Is.EqualTo(stamp), "a finished stage is reused");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
