using RA3.Model;

namespace RA3.Train.Reporting;

/// <summary>A point estimate with its 95 % bootstrap interval.</summary>
/// <param name="Estimate">The figure on the data as measured.</param>
/// <param name="Low">2.5th percentile over the resamples.</param>
/// <param name="High">97.5th percentile over the resamples.</param>
public sealed record Interval(double Estimate, double Low, double High)
{
    /// <summary>Whether the interval excludes 0.</summary>
    public bool ExcludesZero => Low > 0 || High < 0;
}

/// <summary>
/// Percentile bootstrap over a crossed design of seeds × problems: each resample draws seeds with
/// replacement and, independently, problems with replacement (the same problems for every seed,
/// since every seed is evaluated on the same problems), and recomputes the statistic. Resampling
/// both says how much the figure owes to which problems were drawn and to which seeds.
/// Deterministic under its seed.
/// </summary>
public static class PairedBootstrap
{
    /// <summary>Resamples per interval.</summary>
    public const int Resamples = 2000;

    /// <summary>The mean of <paramref name="values"/>[seed][problem] with its interval.</summary>
    public static Interval Mean(double[][] values, ulong seed = 15) =>
        Statistic(values.Length, values.Length == 0 ? 0 : values[0].Length, (s, p) => Average(s, p, values), seed);

    /// <summary>
    /// Any statistic of a resample (seeds drawn, problems drawn → value) over <paramref name="seeds"/>
    /// seeds and <paramref name="problems"/> problems: its value on the data as measured, and the
    /// 2.5th and 97.5th percentiles over <see cref="Resamples"/> resamples (a statistic that is
    /// infinite on some resamples — a level never reached — has an infinite bound).
    /// </summary>
    public static Interval Statistic(int seeds, int problems, Func<int[], int[], double> statistic, ulong seed = 15)
    {
        ArgumentNullException.ThrowIfNull(statistic);
        if (seeds == 0 || problems == 0)
        {
            return new Interval(double.NaN, double.NaN, double.NaN);
        }

        int[] allSeeds = [.. Enumerable.Range(0, seeds)], allProblems = [.. Enumerable.Range(0, problems)];
        double estimate = statistic(allSeeds, allProblems);
        var rng = new Rng(seed);
        var draws = new double[Resamples];
        var s = new int[seeds];
        var p = new int[problems];
        for (int r = 0; r < Resamples; r++)
        {
            for (int i = 0; i < seeds; i++)
            {
                s[i] = rng.NextInt(seeds);
            }

            for (int i = 0; i < problems; i++)
            {
                p[i] = rng.NextInt(problems);
            }

            draws[r] = statistic(s, p);
        }

        Array.Sort(draws);
        return new Interval(estimate, Percentile(draws, 0.025), Percentile(draws, 0.975));
    }

    /// <summary>The mean of values[s][p] over the drawn seeds and problems.</summary>
    public static double Average(int[] seeds, int[] problems, double[][] values)
    {
        ArgumentNullException.ThrowIfNull(seeds);
        ArgumentNullException.ThrowIfNull(problems);
        ArgumentNullException.ThrowIfNull(values);
        double sum = 0;
        foreach (int s in seeds)
        {
            foreach (int p in problems)
            {
                sum += values[s][p];
            }
        }

        return sum / (seeds.Length * (double)problems.Length);
    }

    // The linear interpolation between order statistics (NumPy's default percentile).
    private static double Percentile(double[] sorted, double q)
    {
        double at = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(at), hi = Math.Min(lo + 1, sorted.Length - 1);
        return double.IsInfinity(sorted[lo]) || double.IsInfinity(sorted[hi]) ? sorted[at - lo < 0.5 ? lo : hi] : sorted[lo] + ((at - lo) * (sorted[hi] - sorted[lo]));
    }
}
