namespace RA3.Model.IO;

/// <summary>
/// The version of what a run writes to disk to be read back: training checkpoints, run folders'
/// settings, the demo's cached stages. A folder written by another version is refused with one
/// line saying so, never half reused. Bump it when their layout or meaning changes.
/// </summary>
public static class FormatVersion
{
    /// <summary>
    /// 4: K candidate rationales per boundary (candidates.json holds lists), the E-step's and RLVR's
    /// new settings, inference figures renamed (log_z), the demo's per-problem evaluations. 3:
    /// documents are encoded whole (the canonical document encoding): RA3's line layout and
    /// rollouts, packed corpora, the M-step reading its corpus as token shards; byte-sized
    /// mid-training defaults resolved per tokenizer. 2: checkpoints and run folders record their
    /// format; the demo's settings nest its mid-training and RLVR settings. 1 (unmarked):
    /// everything before.
    /// </summary>
    public const int Current = 4;

    /// <summary>The one line for a folder or file written by format <paramref name="found"/>.</summary>
    public static string Refusal(string what, int found) =>
        $"{what} was written by {(found < Current ? "an older" : "a newer")} ra3 (format {found}; this one reads format {Current}): " +
        (found < Current ? "start a new run in another folder, or delete it" : "use that version of ra3");
}
