using static TorchSharp.torch;
using TTensor = TorchSharp.torch.Tensor;

namespace RA3.Testing;

/// <summary>
/// The temporal-ELBO recursion (ra3-method.md §4) written with TorchSharp float64 ops for one
/// trace: log Z, whose autograd gradients with respect to seg and the think priors are the line
/// marginals and think posteriors the kernels must return. The oracle of the ELBO kernel tests
/// and of the device fixtures.
/// </summary>
internal static class ElboOracle
{
    /// <summary>log Z of a trace of <paramref name="n"/> lines (seg [T+1, T], pt [T], log α = <paramref name="pa"/>, at most <paramref name="maxSpan"/> lines per abstraction, 0 = no limit).</summary>
    public static TTensor LogZ(TTensor seg, TTensor pt, double pa, int n, int t, int maxSpan)
    {
        bool Live(int j, int line) => j <= line + 1 && (j == 0 || maxSpan == 0 || line + 1 - j < maxSpan);
        TTensor Mask(Func<int, bool> keep) => tensor(Enumerable.Range(0, t + 1).Select(keep).ToArray());
        var negInf = full(t + 1, double.NegativeInfinity, float64);
        var f = cat([tensor(new[] { pa }, float64), pt[..1], full(t - 1, double.NegativeInfinity, float64)]);
        for (int line = 1; line < n; line++)
        {
            var emitted = where(Mask(j => j <= line), f + seg[.., line - 1], negInf);
            var stay = where(Mask(j => j <= line && Live(j, line)), emitted + pa, negInf);
            var think = emitted[..(line + 1)].logsumexp(0) + pt[line];
            f = cat([stay[..(line + 1)], think.unsqueeze(0), stay[(line + 2)..]]);
        }

        return where(Mask(j => j <= n), f + seg[.., n - 1], negInf).logsumexp(0);
    }

    /// <summary>
    /// log Z with <paramref name="k"/> candidate rationales per boundary (seg [T·K+1, T] over the
    /// states "no rationale yet" and (boundary, candidate), pt [T, K]): the same recursion over the
    /// larger state vector, its autograd gradients the K-candidate marginals and posteriors.
    /// </summary>
    public static TTensor LogZ(TTensor seg, TTensor pt, double pa, int n, int t, int k, int maxSpan)
    {
        int states = (t * k) + 1;
        int Boundary(int s) => s == 0 ? 0 : 1 + ((s - 1) / k);
        bool Live(int s, int line) => Boundary(s) <= line + 1 && (s == 0 || maxSpan == 0 || line + 1 - Boundary(s) < maxSpan);
        TTensor Mask(Func<int, bool> keep) => tensor(Enumerable.Range(0, states).Select(keep).ToArray());
        var negInf = full(states, double.NegativeInfinity, float64);
        var f = cat([tensor(new[] { pa }, float64), pt[0], full(states - 1 - k, double.NegativeInfinity, float64)]);
        for (int line = 1; line < n; line++)
        {
            int before = 1 + (line * k);
            var emitted = where(Mask(s => s < before), f + seg[.., line - 1], negInf);
            var stay = where(Mask(s => s < before && Live(s, line)), emitted + pa, negInf);
            var into = emitted[..before].logsumexp(0);
            f = cat([stay[..before], into + pt[line], stay[(before + k)..]]);
        }

        return where(Mask(s => s < 1 + (n * k)), f + seg[.., n - 1], negInf).logsumexp(0);
    }
}
