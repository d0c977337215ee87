using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using ScottPlot;

namespace RA3.Train.Reporting;

/// <summary>
/// <c>report.md</c> and its PNG plots for a demo-layout run folder: <c>seed-N/</c> folders, each
/// with <c>ntp/</c> and <c>ra3/</c> mid-training runs (round summaries in <c>metrics.jsonl</c>),
/// <c>eval-base.json</c>, <c>eval-ntp.json</c>, <c>eval-ra3.json</c> (held-out pass@k) and
/// <c>rlvr-base/</c>, <c>rlvr-ntp/</c>, <c>rlvr-ra3/</c> (RLVR metrics). Figures over seeds are
/// given as mean ± standard deviation with every seed's value beside them; the text states the
/// RA3 − NTP differences whatever their sign.
/// </summary>
public static class DemoReport
{
    private static readonly string[] Models = ["base", "ntp", "ra3"];

    /// <summary>Writes the report into <paramref name="root"/>; returns the path of <c>report.md</c>.</summary>
    public static string Write(string root, string? preamble = null)
    {
        var seeds = Directory.GetDirectories(root, "seed-*").Order(StringComparer.Ordinal).ToList();
        if (seeds.Count == 0)
        {
            throw new FileNotFoundException($"{root}: no seed-N folders to report on");
        }

        var md = new StringBuilder("# RA3 vs NTP — demo report\n\n");
        if (preamble is not null)
        {
            md.Append(preamble).Append("\n\n");
        }

        md.Append(CultureInfo.InvariantCulture, $"Seeds: {seeds.Count} ({string.Join(", ", seeds.Select(Path.GetFileName))}). Figures are mean ± standard deviation over seeds, each seed's value in brackets.\n\n");
        PassAtK(root, seeds, md);
        CodeLoss(root, seeds, md);
        Elbo(root, seeds, md);
        CostSweep(root, seeds, md);
        Rlvr(root, seeds, md);
        string path = Path.Combine(root, "report.md");
        RA3.Model.IO.AtomicFile.WriteAllText(path, md.ToString());
        return path;
    }

    private static void PassAtK(string root, List<string> seeds, StringBuilder md)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        md.Append("## Held-out pass@k after mid-training\n\n![pass@k](pass_at_k.png)\n\n| model | pass@1 | pass@5 |\n|---|---|---|\n");
        var bars = new List<Bar>();
        var means = new Dictionary<(string, int), double[]>();
        for (int m = 0; m < Models.Length; m++)
        {
            var row = new List<string> { Models[m] };
            for (int ki = 0; ki < 2; ki++)
            {
                int k = ki == 0 ? 1 : 5;
                double[] values = [.. seeds.Select(s => ReadNumber(Path.Combine(s, $"eval-{Models[m]}.json"), $"pass_at_{k}")).Where(double.IsFinite)];
                means[(Models[m], k)] = values;
                row.Add(Stat(values, 100, "0.0", "%"));
                if (values.Length > 0)
                {
                    bars.Add(new Bar { Position = (ki * 4) + m, Value = 100 * values.Average(), Error = 100 * Std(values), FillColor = palette.GetColor(m) });
                }
            }

            md.Append("| ").Append(string.Join(" | ", row)).Append(" |\n");
        }

        plot.Add.Bars(bars);
        for (int m = 0; m < Models.Length; m++)
        {
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = Label(Models[m]), FillColor = palette.GetColor(m) });
        }

        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([1, 5], ["pass@1", "pass@5"]);
        plot.Axes.Margins(bottom: 0);
        Finish(plot, "Held-out compositions: pass@k (mean ± std over seeds)", string.Empty, "% of problems", Path.Combine(root, "pass_at_k.png"));
        md.Append('\n').Append(Difference("pass@1", means[("ra3", 1)], means[("ntp", 1)], 100, "points", "0.00")).Append(' ')
          .Append(Difference("pass@5", means[("ra3", 5)], means[("ntp", 5)], 100, "points", "0.00")).Append("\n\n");
    }

    private static void CodeLoss(string root, List<string> seeds, StringBuilder md)
    {
        var plot = new Plot();
        md.Append("## Code-token cross-entropy on held-out code\n\n![code CE](code_ce.png)\n\n");
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
            md.Append('\n').Append(Difference("code CE (lower is better)", r3, ntp, 1, "nats per token", "0.0000")).Append('\n');
        }

        md.Append('\n');
    }

    private static void Elbo(string root, List<string> seeds, StringBuilder md)
    {
        var elbo = new Plot();
        var think = new Plot();
        md.Append("## RA3's EM rounds: ELBO and think rate\n\n![ELBO](elbo.png) ![think rate](think_rate.png)\n\n| seed | round | ELBO (nats/trace) | after M-step | think rate (MAP) | rollout think rate | lines / abstraction | E-step reward | syntax valid |\n|---|---|---|---|---|---|---|---|---|\n");
        foreach (string seed in seeds)
        {
            var rounds = Rounds(Path.Combine(seed, "ra3"));
            if (rounds.Count == 0)
            {
                continue;
            }

            double[] xs = [.. Enumerable.Range(1, rounds.Count).Select(i => (double)i)];
            var before = elbo.Add.Scatter(xs, [.. rounds.Select(r => Number(r, "elbo"))]);
            before.LegendText = $"{Path.GetFileName(seed)}: E-step scorer";
            var after = elbo.Add.Scatter(xs, [.. rounds.Select(r => Number(r, "elbo_after_mstep"))]);
            after.LegendText = $"{Path.GetFileName(seed)}: after M-step";
            after.LinePattern = LinePattern.Dashed;
            var map = think.Add.Scatter(xs, [.. rounds.Select(r => Number(r, "think_rate"))]);
            map.LegendText = $"{Path.GetFileName(seed)}: kept (MAP)";
            var sampled = think.Add.Scatter(xs, [.. rounds.Select(r => Number(r, "rollout_think_rate"))]);
            sampled.LegendText = $"{Path.GetFileName(seed)}: rollouts";
            sampled.LinePattern = LinePattern.Dashed;
            foreach (var r in rounds)
            {
                md.Append(CultureInfo.InvariantCulture, $"| {Path.GetFileName(seed)} | {Number(r, "round"):0} | {Number(r, "elbo"):0.000} | {Number(r, "elbo_after_mstep"):0.000} | {Number(r, "think_rate"):0.000} | {Number(r, "rollout_think_rate"):0.000} | {(double.IsFinite(Number(r, "lines_per_abstraction")) ? Number(r, "lines_per_abstraction").ToString("0.00", CultureInfo.InvariantCulture) : "n/a")} | {Number(r, "reward"):0.000} | {Number(r, "syntax_valid_rate"):0.00} |\n");
            }
        }

        IntegerTicks(elbo);
        IntegerTicks(think);
        Finish(elbo, "Temporal ELBO of the training traces per round", "round", "mean log Z per trace (nats)", Path.Combine(root, "elbo.png"));
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
        md.Append("## RLVR from each initialisation\n\n![RLVR held-out pass@1](rlvr.png) ![RLVR reward](rlvr_reward.png)\n\n| seed | from | held-out pass@1 at step 0 | at the end | mean train reward (first half → second half) |\n|---|---|---|---|---|\n");
        var palette = new ScottPlot.Palettes.Category10();
        foreach (string seed in seeds)
        {
            for (int m = 0; m < Models.Length; m++)
            {
                string path = Path.Combine(seed, $"rlvr-{Models[m]}", "metrics.jsonl");
                if (!File.Exists(path))
                {
                    continue;
                }

                var rows = File.ReadLines(path).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
                var evals = rows.Where(r => r["eval_pass_at_1"] is not null).ToList();
                if (evals.Count == 0)
                {
                    continue;  // a run without held-out problems has no pass@1 curve
                }

                var line = pass.Add.Scatter(evals.Select(r => Number(r, "step")).ToArray(), evals.Select(r => 100 * Number(r, "eval_pass_at_1")).ToArray());
                line.LegendText = $"{Label(Models[m])} ({Path.GetFileName(seed)})";
                line.Color = palette.GetColor(m);
                var trained = rows.Where(r => r["reward"] is not null).ToList();
                var curve = reward.Add.Scatter(trained.Select(r => Number(r, "step")).ToArray(), Smooth([.. trained.Select(r => Number(r, "reward"))], 3));
                curve.LegendText = $"{Label(Models[m])} ({Path.GetFileName(seed)})";
                curve.Color = palette.GetColor(m);
                int half = trained.Count / 2;
                md.Append(CultureInfo.InvariantCulture, $"| {Path.GetFileName(seed)} | {Label(Models[m])} | {100 * Number(evals[0], "eval_pass_at_1"):0.0}% | {100 * Number(evals[^1], "eval_pass_at_1"):0.0}% | {trained.Take(half).Select(r => Number(r, "reward")).DefaultIfEmpty(double.NaN).Average():0.000} → {trained.Skip(half).Select(r => Number(r, "reward")).DefaultIfEmpty(double.NaN).Average():0.000} |\n");
            }
        }

        Finish(pass, "RLVR: held-out pass@1 from each initialisation", "RLVR step", "pass@1 (%)", Path.Combine(root, "rlvr.png"));
        Finish(reward, "RLVR: training reward (moving average of 3 steps)", "RLVR step", "mean reward", Path.Combine(root, "rlvr_reward.png"));
        md.Append('\n');
    }

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

    private static string Difference(string what, double[] ra3, double[] ntp, double scale, string unit, string format)
    {
        int n = Math.Min(ra3.Length, ntp.Length);
        if (n == 0)
        {
            return $"RA3 − NTP {what}: n/a.";
        }

        double[] d = [.. Enumerable.Range(0, n).Select(i => scale * (ra3[i] - ntp[i]))];
        string signed = $"+{format};-{format};{format}";
        return string.Create(CultureInfo.InvariantCulture, $"RA3 − NTP {what}: {d.Average().ToString(signed, CultureInfo.InvariantCulture)} ± {Std(d).ToString(format, CultureInfo.InvariantCulture)} {unit} over {n} seed(s) (per seed: {string.Join(", ", d.Select(x => x.ToString(signed, CultureInfo.InvariantCulture)))}).");
    }

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
