using NUnit.Framework;
using RA3.Train.Reporting;

namespace RA3.Train.Tests;

/// <summary>The report's bootstrap over problems × seeds on cases whose answer is known.</summary>
public sealed class PairedStatisticsTests
{
    [Test]
    public void AConstantDifferenceHasAPointInterval()
    {
        var i = PairedBootstrap.Mean([[0.25, 0.25, 0.25], [0.25, 0.25, 0.25]]);
        Assert.That((i.Estimate, i.Low, i.High), Is.EqualTo((0.25, 0.25, 0.25)));
        Assert.That(i.ExcludesZero);
    }

    [Test]
    public void TheIntervalOfAMeanOfCoinFlipsIsTheNormalOne()
    {
        // 400 problems, 30 % of them 1: the mean's standard error is √(0.21/400) ≈ 0.0229, so the
        // 95 % interval is about ±0.045 around 0.3; resampling seeds with one seed changes nothing.
        double[] flips = [.. Enumerable.Range(0, 400).Select(p => p % 10 < 3 ? 1.0 : 0.0)];
        var i = PairedBootstrap.Mean([flips]);
        Assert.That(i.Estimate, Is.EqualTo(0.3).Within(1e-12));
        Assert.That(i.Low, Is.EqualTo(0.3 - 0.0449).Within(0.006));
        Assert.That(i.High, Is.EqualTo(0.3 + 0.0449).Within(0.006));
        Assert.That(PairedBootstrap.Mean([flips]), Is.EqualTo(i), "deterministic under its seed");
    }

    [Test]
    public void SeedsAreResampledToo()
    {
        // Two seeds whose problems agree within each seed but differ between them: all the spread is the seeds'.
        var i = PairedBootstrap.Mean([[1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]]);
        Assert.That(i.Estimate, Is.EqualTo(0));
        Assert.That((i.Low, i.High), Is.EqualTo((-1.0, 1.0)), "a resample may draw the same seed twice");
        var never = PairedBootstrap.Statistic(1, 3, (s, p) => p.Contains(0) ? 5 : double.PositiveInfinity);
        Assert.That(never.High, Is.EqualTo(double.PositiveInfinity), "a level some resamples never reach has an infinite bound");
    }
}
