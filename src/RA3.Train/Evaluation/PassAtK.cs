namespace RA3.Train.Evaluation;

/// <summary>The unbiased pass@k estimator of Chen et al. (2021).</summary>
public static class PassAtK
{
    /// <summary>
    /// 1 − C(n − c, k) / C(n, k) for n samples of which c pass, as the product
    /// 1 − Π_{i = n−c+1..n} (1 − k / i), which never forms a binomial coefficient (stable for any n).
    /// When fewer than k samples fail (n − c &lt; k) the product has the factor i = k, exactly 0,
    /// so the estimate is exactly 1 without a case of its own.
    /// </summary>
    public static double Estimate(int n, int c, int k)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(c);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(c, n);
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(k, n);
        double fail = 1.0;
        for (int i = n - c + 1; i <= n; i++)
        {
            fail *= 1.0 - ((double)k / i);
        }

        return 1.0 - fail;
    }
}
