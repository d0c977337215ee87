namespace RA3.Train.Runs;

/// <summary>
/// Declares a settings property that is itself a settings record (the demo's mid-training and
/// RLVR): its options join the parent's as <c>prefix.name</c> (as <c>name</c> when the prefix is
/// empty: options two commands share, such as generation's), except those the parent sets itself.
/// </summary>
/// <param name="prefix">The options' prefix (<c>--prefix.name</c>), or empty.</param>
[AttributeUsage(AttributeTargets.Property)]
public sealed class NestedOptionsAttribute(string prefix) : Attribute
{
    /// <summary>The options' prefix.</summary>
    public string Prefix { get; } = prefix;

    /// <summary>Names of the nested options the parent sets itself, separated by '|' (not options of the parent).</summary>
    public string Except { get; init; } = string.Empty;
}
