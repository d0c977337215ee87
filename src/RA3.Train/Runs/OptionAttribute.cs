namespace RA3.Train.Runs;

/// <summary>
/// Declares a settings property as a command-line option and a key of a run's config file: the
/// property's initializer is its default, this attribute its name, help line and bounds. The
/// command line, the usage text, the config file and its validation all read this one declaration.
/// </summary>
/// <param name="name">The option's name (<c>--name</c>) and the config file's key.</param>
/// <param name="help">One line for the usage text.</param>
[AttributeUsage(AttributeTargets.Property)]
public sealed class OptionAttribute(string name, string help) : Attribute
{
    /// <summary>The option's name.</summary>
    public string Name { get; } = name;

    /// <summary>One line of help.</summary>
    public string Help { get; } = help;

    /// <summary>The smallest value allowed (numbers; NaN = no bound).</summary>
    public double Min { get; init; } = double.NaN;

    /// <summary>Whether <see cref="Min"/> itself is excluded (a value must be above it).</summary>
    public bool MinExclusive { get; init; }

    /// <summary>The largest value allowed (numbers; NaN = no bound).</summary>
    public double Max { get; init; } = double.NaN;

    /// <summary>Whether <see cref="Max"/> itself is excluded (a value must be below it).</summary>
    public bool MaxExclusive { get; init; }

    /// <summary>The values allowed, separated by '|' (strings; null = any).</summary>
    public string? Choices { get; init; }

    /// <summary>The value's placeholder in the usage text (DIR, FILE, SPEC …; default: N, X or VALUE by type).</summary>
    public string? Value { get; init; }

    /// <summary>Whether the run's saved config keeps it (false for what only steers this process, such as <c>stop-after</c>).</summary>
    public bool InConfig { get; init; } = true;

    /// <summary>Whether a value must be given (for options whose default is null).</summary>
    public bool Required { get; init; }
}
