namespace RA3.Train.Runs;

/// <summary>
/// A setting that cannot work (out of range, inconsistent with another, a backend this machine
/// lacks): domain code throws it, naming the option; the command line prints it as a usage error.
/// </summary>
/// <param name="option">The option's name, without dashes.</param>
/// <param name="message">What is wrong with it.</param>
public sealed class SettingsException(string option, string message) : Exception(message)
{
    /// <summary>The option at fault.</summary>
    public string Option { get; } = option;
}
