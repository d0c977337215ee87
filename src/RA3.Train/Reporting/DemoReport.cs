using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using ScottPlot;

namespace RA3.Train.Reporting;

/// <summary>
/// <c>report.md</c> and its PNG plots for a demo-layout run folder: <c>eval-base.json</c> and
/// <c>seed-N/</c> folders, each with <c>ntp/</c> and <c>ra3/</c> mid-training runs (round summaries
/// in <c>metrics.jsonl</c>), <c>eval-ntp.json</c> and <c>eval-ra3.json</c> (held-out pass@k and code
/// cross-entropy, per problem) and <c>rlvr-base/</c>, <c>rlvr-ntp/</c>, <c>rlvr-ra3/</c> (RLVR metrics
/// with per-problem held-out measurements). Figures over seeds are given as mean ± standard deviation
/// with every seed's value beside them; RA3 − NTP is paired by problem and seed, with a bootstrap
/// 95 % interval over problems and seeds (<see cref="PairedBootstrap"/>); the text states every
/// difference whatever its sign.
/// </summary>
public static class DemoReport
{
    private static readonly string[] Models = ["base", "ntp", "ra3"];

    /// <summary>Writes the report into <paramref name="root"/>; returns the path of <c>report.md</c>.</summary>
    public static string Write(string root, string? preamble = null)
    {
        var seeds = Directory.GetDirectories(root, "seed-*").OrderBy(d => int.Parse(Path.GetFileName(d)["seed-".Length..], CultureInfo.InvariantCulture)).ToList();
        if (seeds.Count == 0)
        {
            throw new FileNotFoundException($"{root}: no seed-N folders to report on");
        }

        var md = new StringBuilder("# RA3 vs NTP — demo report\n\n");
        if (preamble is not null)
        {
            md.Append(preamble).Append("\n\n");
        }

        var evals = Evaluations(root, seeds);
        int problems = evals.Values.SelectMany(x => x).Select(e => e.Correct.Length).DefaultIfEmpty(0).Max();
        var rlvr = seeds.Where(s => Models.Any(m => File.Exists(Path.Combine(s, $"rlvr-{m}", "metrics.jsonl")))).ToList();
        int rlvrSteps = rlvr.Select(s => Rows(Path.Combine(s, "rlvr-ntp", "metrics.jsonl")).Select(r => (int)Number(r, "step")).DefaultIfEmpty(0).Max()).DefaultIfEmpty(0).Max();
        md.Append(CultureInfo.InvariantCulture, $"**{problems} held-out problems, {seeds.Count} seeds ({string.Join(", ", seeds.Select(Path.GetFileName))}), RLVR of {rlvrSteps} steps from each model of {rlvr.Count} seed(s).** Figures over seeds are mean ± standard deviation, each seed's value in brackets; intervals are 95 % bootstrap intervals over problems and seeds.\n\n");
        PassAtK(root, seeds, evals, md);
        CodeLoss(root, seeds, md);
        Elbo(root, seeds, md);
        CostSweep(root, seeds, md);
        Rlvr(root, rlvr, md);
        string path = Path.Combine(root, "report.md");
        RA3.Model.IO.AtomicFile.WriteAllText(path, md.ToString());
        return path;
    }

    /// <summary>One model's held-out evaluation: per problem the samples that passed (of <see cref="Samples"/>) and the code cross-entropy.</summary>
    private sealed record Evaluation(int Samples, int[] Correct, double[] CodeCe);

    // Per model, per seed (base: the same evaluation for every seed).
    private static Dictionary<string, List<Evaluation>> Evaluations(string root, List<string> seeds)
    {
        var result = new Dictionary<string, List<Evaluation>>(StringComparer.Ordinal);
        foreach (string m in Models)
        {
            result[m] = [.. seeds.Select(s => m == "base" ? Path.Combine(root, "eval-base.json") : Path.Combine(s, $"eval-{m}.json")).Where(File.Exists).Select(Read)];
        }

        return result;

        static Evaluation Read(string path)
        {
            var o = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            var rows = o["per_problem"]!.AsArray().Select(r => r!.AsObject()).ToList();
            return new Evaluation(o["samples"]!.GetValue<int>(), [.. rows.Select(r => r["c"]!.GetValue<int>())], [.. rows.Select(r => r["code_ce"]!.GetValue<double>())]);
        }
    }

    private static void PassAtK(string root, List<string> seeds, Dictionary<string, List<Evaluation>> evals, StringBuilder md)
    {
        int n = evals.Values.SelectMany(x => x).Select(e => e.Samples).DefaultIfEmpty(1).Min();
        int[] ks = n >= 5 ? [1, 5] : [1];
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        md.Append("## Held-out pass@k and code cross-entropy after mid-training\n\n![pass@k](pass_at_k.png)\n\n")
          .Append("| model | ").Append(string.Join(" | ", ks.Select(k => $"pass@{k}"))).Append(" | code CE (nats/token) |\n|---|").Append(string.Concat(ks.Select(_ => "---|"))).Append("---|\n");
        var bars = new List<Bar>();
        for (int m = 0; m < Models.Length; m++)
        {
            var per = evals[Models[m]];
            var row = new List<string> { Label(Models[m]) + (Models[m] == "base" ? " (one evaluation, every seed)" : string.Empty) };
            for (int ki = 0; ki < ks.Length; ki++)
            {
                double[] values = [.. per.Select(e => PassAt(e, ks[ki]))];
                row.Add(Stat(values, 100, "0.0", "%"));
                if (values.Length > 0)
                {
                    bars.Add(new Bar { Position = (ki * 4) + m, Value = 100 * values.Average(), Error = 100 * Std(values), FillColor = palette.GetColor(m) });
                }
            }

            row.Add(Stat([.. per.Select(e => e.CodeCe.Average())], 1, "0.0000", string.Empty));
            md.Append("| ").Append(string.Join(" | ", row)).Append(" |\n");
        }

        plot.Add.Bars(bars);
        for (int m = 0; m < Models.Length; m++)
        {
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = Label(Models[m]), FillColor = palette.GetColor(m) });
        }

        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. ks.Select((_, i) => (i * 4) + 1.0)], [.. ks.Select(k => $"pass@{k}")]);
        plot.Axes.Margins(bottom: 0);
        Finish(plot, "Held-out compositions: pass@k (mean ± std over seeds)", string.Empty, "% of problems", Path.Combine(root, "pass_at_k.png"));

        md.Append("\n### Paired differences (per problem and seed)\n\n| difference | ").Append(string.Join(" | ", ks.Select(k => $"pass@{k} (points)"))).Append(" | code CE (nats/token; lower is better) |\n|---|").Append(string.Concat(ks.Select(_ => "---|"))).Append("---|\n");
        foreach (var (a, b) in new[] { ("ra3", "ntp"), ("ra3", "base"), ("ntp", "base") })
        {
            // The base model has one evaluation, read once per seed: each seed's pair uses it.
            int pairs = Math.Min(evals[a].Count, evals[b].Count);
            var ea = evals[a].Take(pairs).ToList();
            var eb = evals[b].Take(pairs).ToList();
            if (pairs == 0)
            {
                continue;
            }

            var cells = ks.Select(k => Cell(PairedBootstrap.Mean([.. ea.Select((e, s) => Enumerable.Range(0, e.Correct.Length).Select(p => 100 * (RA3.Train.Evaluation.PassAtK.Estimate(e.Samples, e.Correct[p], k) - RA3.Train.Evaluation.PassAtK.Estimate(eb[s].Samples, eb[s].Correct[p], k))).ToArray())]), "+0.00;-0.00;0.00")).ToList();
            cells.Add(Cell(PairedBootstrap.Mean([.. ea.Select((e, s) => e.CodeCe.Select((c, p) => c - eb[s].CodeCe[p]).ToArray())]), "+0.0000;-0.0000;0.0000"));
            md.Append(CultureInfo.InvariantCulture, $"| {Label(a)} − {Label(b)} ({pairs} seed(s)) | {string.Join(" | ", cells)} |\n");
        }

        md.Append("\nEach cell: the mean difference over problems and seeds [95 % bootstrap interval]; an interval that contains 0 does not separate the two.\n\n");
    }

    private static double PassAt(Evaluation e, int k) => e.Correct.Average(c => RA3.Train.Evaluation.PassAtK.Estimate(e.Samples, c, k));

    private static string Cell(Interval i, string format) => $"{Format(i.Estimate, format)} [{Format(i.Low, format)}, {Format(i.High, format)}]";

    // A figure as the report prints it: ∞ where a curve never reached its target (the invariant culture writes "Infinity").
    private static string Format(double value, string format) =>
        double.IsPositiveInfinity(value) ? "∞" : value.ToString(format, CultureInfo.InvariantCulture);

    private static void CodeLoss(string root, List<string> seeds, StringBuilder md)
    {
        var plot = new Plot();
        md.Append("## Mid-training: code-token cross-entropy per round on the runs' own held-out traces\n\n![code CE](code_ce.png)\n\n");
        var finals = new Dictionary<string, double[]>();
        foreach (string method in new[] { "ntp", "ra3" })
        {
            var perSeed = seeds.Select(s => Rounds(Path.Combine(s, method))).Where(r => r.Count > 0).ToList();
            if (perSeed.Count == 0)
            {
                continue;
            }

            int rounds = perSeed.Min(r => r.Count);
            double[] xs = [.. Enumerable.Range(0, rounds + 1).Select(i => (double)i)];
            double[] ys = [.. xs.Select(x => perSeed.Average(r => x == 0 ? Number(r[0], "code_ce_heldout_init") : Number(r[(int)x - 1], "code_ce_heldout")))];
            var line = plot.Add.Scatter(xs, ys);
            line.LegendText = Label(method);
            finals[method] = [.. perSeed.Select(r => Number(r[rounds - 1], "code_ce_heldout"))];
            md.Append(CultureInfo.InvariantCulture, $"- {Label(method)}: {Stat(finals[method], 1, "0.0000", " nats/token")} after {rounds} rounds (start {Stat([.. perSeed.Select(r => Number(r[0], "code_ce_heldout_init"))], 1, "0.0000", "")})\n");
        }

        IntegerTicks(plot);
        Finish(plot, "Held-out code-token cross-entropy per round (round 0: the pre-trained model)", "round", "nats per token", Path.Combine(root, "code_ce.png"));
        if (finals.TryGetValue("ra3", out var r3) && finals.TryGetValue("ntp", out var ntp))
        {
            double[] d = [.. r3.Zip(ntp, (x, y) => x - y)];
            md.Append(CultureInfo.InvariantCulture, $"\nRA3 − NTP code CE on these traces (lower is better): {Stat(d, 1, "+0.0000;-0.0000;0.0000", " nats per token")}.\n");
        }

        md.Append('\n');
    }

    private static void Elbo(string root, List<string> seeds, StringBuilder md)
    {
        var elbo = new Plot();
        var think = new Plot();
        md.Append("## RA3's EM rounds: log Z, the marginal-likelihood bound and the think rate\n\n")
          .Append("log Z is the DP's log-sum over segmentations of prior × likelihood: it carries log α per line and c per rationale, so it scores the segmentations and is no bound on log p(x). ")
          .Append("Comparable with a model's log-likelihood of the code are the bound log Σ_z p(x, z) over the candidate comments (the model's own probabilities, no prior) and its z = none term, the bare code's log-likelihood (per line).\n\n")
          .Append("![log Z](elbo.png) ![think rate](think_rate.png)\n\n| seed | round | log Z (nats/trace) | after M-step | bound per line | bare per line | think rate (MAP) | rollout think rate | lines / abstraction | E-step reward | same program |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
        foreach (string seed in seeds)
        {
            var rounds = Rounds(Path.Combine(seed, "ra3"));
            if (rounds.Count == 0)
            {
                continue;
            }

            double[] xs = [.. Enumerable.Range(1, rounds.Count).Select(i => (double)i)];
            var before = elbo.Add.Scatter(xs, [.. rounds.Select(r => Number(r, "log_z"))]);
            before.LegendText = $"{Path.GetFileName(seed)}: E-step scorer";
            var after = elbo.Add.Scatter(xs, [.. rounds.Select(r => Number(r, "log_z_after_mstep"))]);
            after.LegendText = $"{Path.GetFileName(seed)}: after M-step";
            after.LinePattern = LinePattern.Dashed;
            var map = think.Add.Scatter(xs, [.. rounds.Select(r => Number(r, "think_rate"))]);
            map.LegendText = $"{Path.GetFileName(seed)}: kept (MAP)";
            var sampled = think.Add.Scatter(xs, [.. rounds.Select(r => Number(r, "rollout_think_rate"))]);
            sampled.LegendText = $"{Path.GetFileName(seed)}: rollouts";
            sampled.LinePattern = LinePattern.Dashed;
            foreach (var r in rounds)
            {
                md.Append(CultureInfo.InvariantCulture, $"| {Path.GetFileName(seed)} | {Number(r, "round"):0} | {Number(r, "log_z"):0.000} | {Number(r, "log_z_after_mstep"):0.000} | {Number(r, "log_marginal_bound_per_line"):0.0000} | {Number(r, "log_likelihood_bare_per_line"):0.0000} | {Number(r, "think_rate"):0.000} | {Number(r, "rollout_think_rate"):0.000} | {(double.IsFinite(Number(r, "lines_per_abstraction")) ? Number(r, "lines_per_abstraction").ToString("0.00", CultureInfo.InvariantCulture) : "n/a")} | {Number(r, "reward"):0.000} | {Number(r, "program_same_rate"):0.00} |\n");
            }
        }

        IntegerTicks(elbo);
        IntegerTicks(think);
        Finish(elbo, "log Z of the training traces per round", "round", "mean log Z per trace (nats)", Path.Combine(root, "elbo.png"));
        Finish(think, "Think rate per round", "round", "rationales per line", Path.Combine(root, "think_rate.png"));
        md.Append('\n');
    }

    private static void CostSweep(string root, List<string> seeds, StringBuilder md)
    {
        var plot = new Plot();
        md.Append("## Mean lines per abstraction versus c\n\nThe MAP segmentation of round 1's scored candidates for each cost c (the same scores, inferred once per c).\n\n![lines per abstraction vs c](abstraction_vs_c.png)\n\n| seed | " + string.Join(" | ", Midtraining.Midtrainer.CostSweep.Select(c => $"c = {c}")) + " |\n|---|" + string.Concat(Midtraining.Midtrainer.CostSweep.Select(_ => "---|")) + "\n");
        foreach (string seed in seeds)
        {
            var rounds = Rounds(Path.Combine(seed, "ra3"));
            if (rounds.Count == 0 || rounds[0]["c_sweep"] is not JsonArray sweep)
            {
                continue;
            }

            var points = sweep.Select(p => p!.AsObject()).ToList();
            double[] xs = [.. points.Select(p => Math.Log10(Number(p, "c")))];
            var lines = plot.Add.Scatter(xs, points.Select(p => Number(p, "lines_per_abstraction")).ToArray());
            lines.LegendText = $"{Path.GetFileName(seed)}: lines per abstraction (left)";
            var rate = plot.Add.Scatter(xs, points.Select(p => Number(p, "think_rate")).ToArray());
            rate.LegendText = $"{Path.GetFileName(seed)}: think rate (right)";
            rate.LinePattern = LinePattern.Dashed;
            rate.Axes.YAxis = plot.Axes.Right;
            md.Append(CultureInfo.InvariantCulture, $"| {Path.GetFileName(seed)} | {string.Join(" | ", points.Select(p => double.IsFinite(Number(p, "lines_per_abstraction")) ? $"{Number(p, "lines_per_abstraction"):0.00} lines ({Number(p, "think_rate"):0.000} think)" : "no rationale kept"))} |\n");
        }

        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. Midtraining.Midtrainer.CostSweep.Select(Math.Log10)], [.. Midtraining.Midtrainer.CostSweep.Select(c => c.ToString(CultureInfo.InvariantCulture))]);
        plot.Axes.Right.Label.Text = "rationales per line";
        Finish(plot, "Mean lines per abstraction (and think rate) of the MAP segmentation versus c", "c (nats per rationale, log scale)", "lines per abstraction", Path.Combine(root, "abstraction_vs_c.png"));
        md.Append('\n');
    }

    private static void Rlvr(string root, List<string> seeds, StringBuilder md)
    {
        var pass = new Plot();
        var reward = new Plot();
        md.Append("## RLVR from each initialisation\n\n![RLVR held-out pass@1](rlvr.png) ![RLVR reward](rlvr_reward.png)\n\n");
        var palette = new ScottPlot.Palettes.Category10();

        // Per model, per seed: the measured steps and, per step, each curve problem's passing samples.
        var curves = new Dictionary<string, List<(int[] Steps, int[][] Correct, int Samples)>>(StringComparer.Ordinal);
        for (int m = 0; m < Models.Length; m++)
        {
            curves[Models[m]] = [];
            foreach (string seed in seeds)
            {
                var rows = Rows(Path.Combine(seed, $"rlvr-{Models[m]}", "metrics.jsonl"));
                var evals = rows.Where(r => r["eval_correct"] is JsonArray).ToList();
                if (evals.Count == 0)
                {
                    continue;  // a run without held-out problems has no pass@1 curve
                }

                curves[Models[m]].Add(([.. evals.Select(r => (int)Number(r, "step"))], [.. evals.Select(r => r["eval_correct"]!.AsArray().Select(c => c!.GetValue<int>()).ToArray())], (int)Number(evals[0], "eval_samples")));
                var trained = rows.Where(r => r["reward"] is not null).ToList();
                var curve = reward.Add.Scatter(trained.Select(r => Number(r, "step")).ToArray(), Smooth([.. trained.Select(r => Number(r, "reward"))], 3));
                curve.LegendText = $"{Label(Models[m])} ({Path.GetFileName(seed)})";
                curve.Color = palette.GetColor(m);
            }

            var runs = curves[Models[m]];
            if (runs.Count > 0)
            {
                int[] steps = runs[0].Steps;
                var line = pass.Add.Scatter(steps.Select(x => (double)x).ToArray(), steps.Select((_, e) => 100 * runs.Average(r => r.Correct[e].Average(c => c / (double)r.Samples))).ToArray());
                line.LegendText = $"{Label(Models[m])} (mean of {runs.Count} seed(s))";
                line.Color = palette.GetColor(m);
            }
        }

        Finish(pass, "RLVR: held-out pass@1 from each initialisation (fixed problems and sampling seeds)", "RLVR step", "pass@1 (%)", Path.Combine(root, "rlvr.png"));
        Finish(reward, "RLVR: training reward (moving average of 3 steps)", "RLVR step", "mean reward", Path.Combine(root, "rlvr_reward.png"));
        if (curves.Values.All(c => c.Count == 0))
        {
            md.Append("No RLVR curves.\n\n");
            return;
        }

        int seedCount = curves.Values.Min(c => c.Count), problems = curves.Values.SelectMany(c => c).Min(c => c.Correct[0].Length);
        int[] grid = curves["ntp"].Count > 0 ? curves["ntp"][0].Steps : curves.Values.First(c => c.Count > 0)[0].Steps;
        double Curve(string m, int e, int[] s, int[] p) => s.Average(i => p.Average(q => curves[m][i].Correct[e][q] / (double)curves[m][i].Samples));
        double Target(int[] s, int[] p) => Curve("ntp", grid.Length - 1, s, p);
        double Reach(string m, int[] s, int[] p)
        {
            double target = Target(s, p);
            for (int e = 0; e < grid.Length; e++)
            {
                if (Curve(m, e, s, p) >= target - 1e-12)
                {
                    return grid[e];
                }
            }

            return double.PositiveInfinity;
        }

        // The area under the pass@1 curve per step of RLVR (trapezoids over the measured steps): the curve's mean height.
        double Area(string m, int[] s, int[] p)
        {
            double area = 0;
            for (int e = 1; e < grid.Length; e++)
            {
                area += (grid[e] - grid[e - 1]) * (Curve(m, e - 1, s, p) + Curve(m, e, s, p)) / 2;
            }

            return grid.Length > 1 ? area / (grid[^1] - grid[0]) : Curve(m, 0, s, p);
        }

        md.Append(CultureInfo.InvariantCulture, $"Held-out pass@1 of the first {problems} evaluation problems, measured at steps {string.Join(", ", grid)} with the same samples' seeds each time (step 0 is the evaluation table's figure on those problems); {seedCount} seed(s). Steps to reach NTP-init's final pass@1: the first measured step at or above it (∞: not within the run).\n\n")
          .Append("| from | pass@1 at step 0 | at the end | area under the curve (mean pass@1) | steps to reach NTP-init's final |\n|---|---|---|---|---|\n");
        foreach (string m in Models.Where(m => curves[m].Count >= seedCount && seedCount > 0))
        {
            var start = PairedBootstrap.Statistic(seedCount, problems, (s, p) => 100 * Curve(m, 0, s, p));
            var end = PairedBootstrap.Statistic(seedCount, problems, (s, p) => 100 * Curve(m, grid.Length - 1, s, p));
            var area = PairedBootstrap.Statistic(seedCount, problems, (s, p) => 100 * Area(m, s, p));
            var reach = PairedBootstrap.Statistic(seedCount, problems, (s, p) => Reach(m, s, p));
            md.Append(CultureInfo.InvariantCulture, $"| {Label(m)} | {Cell(start, "0.0")}% | {Cell(end, "0.0")}% | {Cell(area, "0.0")}% | {Cell(reach, "0")} |\n");
        }

        if (curves["ra3"].Count >= seedCount && curves["ntp"].Count >= seedCount && seedCount > 0)
        {
            var gap = PairedBootstrap.Statistic(seedCount, problems, (s, p) => 100 * (Area("ra3", s, p) - Area("ntp", s, p)));
            var endGap = PairedBootstrap.Statistic(seedCount, problems, (s, p) => 100 * (Curve("ra3", grid.Length - 1, s, p) - Curve("ntp", grid.Length - 1, s, p)));
            md.Append(CultureInfo.InvariantCulture, $"\nRA3-init − NTP-init: area under the curve {Cell(gap, "+0.0;-0.0;0.0")} points, final pass@1 {Cell(endGap, "+0.0;-0.0;0.0")} points.\n");
        }

        md.Append('\n');
    }

    private static List<JsonObject> Rows(string path) =>
        File.Exists(path) ? [.. File.ReadLines(path).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject())] : [];

    private static List<JsonObject> Rounds(string run)
    {
        string path = Path.Combine(run, "metrics.jsonl");
        return File.Exists(path) ? [.. File.ReadLines(path).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject())] : [];
    }

    private static double ReadNumber(string path, string key) => File.Exists(path) ? Number(JsonNode.Parse(File.ReadAllText(path))!.AsObject(), key) : double.NaN;

    private static double Number(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue(out double d) ? d : double.NaN;

    private static double[] Smooth(double[] values, int window) =>
        [.. values.Select((_, i) => values.Skip(Math.Max(0, i - window + 1)).Take(Math.Min(window, i + 1)).Average())];

    private static double Std(double[] values)
    {
        if (values.Length < 2)
        {
            return 0;
        }

        double mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1));
    }

    private static string Stat(double[] values, double scale, string format, string unit) => values.Length == 0 ? "n/a"
        : string.Create(CultureInfo.InvariantCulture, $"{(scale * values.Average()).ToString(format, CultureInfo.InvariantCulture)} ± {(scale * Std(values)).ToString(format, CultureInfo.InvariantCulture)}{unit} [{string.Join(", ", values.Select(v => (scale * v).ToString(format, CultureInfo.InvariantCulture)))}]");

    private static string Label(string model) => model switch { "base" => "pre-trained", "ntp" => "NTP", "ra3" => "RA3", _ => model };

    // Rounds are whole numbers: one tick each.
    private static void IntegerTicks(Plot plot) => plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericFixedInterval(1);

    private static void Finish(Plot plot, string title, string x, string y, string path)
    {
        plot.Title(title);
        plot.XLabel(x);
        plot.YLabel(y);
        plot.ShowLegend();
        plot.SavePng(path, 900, 540);
    }
}
