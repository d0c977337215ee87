using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;
using System.Reflection;

namespace RA3.Kernels.Ops;

/// <summary>
/// What the backend classes declare about their kernels, read by reflection once per class: the
/// ops of the contract (every virtual <c>…Core</c> of <see cref="Backend"/>) and which of a
/// backend's kernels take bfloat16 (<see cref="TakesBFloat16Attribute"/>). It sits apart from
/// <see cref="Backend"/>, whose annotation keeps every backend's non-public methods for this
/// reading (so the NativeAOT-compiled engine reads them too), because a method with such a
/// requirement may not itself be one of the methods kept that way.
/// </summary>
internal static class KernelDeclarations
{
    private static readonly ConcurrentDictionary<Type, FrozenSet<string>> BFloat16ByType = new();

    /// <summary>The ops of the contract, by the name of their public method, in order.</summary>
    public static string[] OpNames { get; } = [.. typeof(Backend).GetMethods(BindingFlags.Instance | BindingFlags.NonPublic)
        .Where(m => m.DeclaringType == typeof(Backend) && m.IsVirtual && m.Name.EndsWith("Core", StringComparison.Ordinal))
        .Select(m => m.Name[..^"Core".Length]).Distinct().Order(StringComparer.Ordinal)];

    /// <summary>The ops whose most-derived <c>…Core</c> in <paramref name="backend"/> carries <see cref="TakesBFloat16Attribute"/>.</summary>
    public static FrozenSet<string> TakingBFloat16([DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.NonPublicMethods)] Type backend)
    {
        if (BFloat16ByType.TryGetValue(backend, out var known))
        {
            return known;
        }

        var ops = new List<string>();
        foreach (string op in OpNames)
        {
            if (backend.GetMethod(op + "Core", BindingFlags.Instance | BindingFlags.NonPublic)!.IsDefined(typeof(TakesBFloat16Attribute), inherit: false))
            {
                ops.Add(op);
            }
        }

        var set = ops.ToFrozenSet(StringComparer.Ordinal);
        BFloat16ByType.TryAdd(backend, set);
        return set;
    }
}
