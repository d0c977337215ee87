using System.Globalization;
using RA3.Model;
using RA3.Model.Tokenizers;

namespace RA3.Train.Data;

/// <summary>Where a <see cref="PackedDataset"/> reader is: epoch, index into the epoch's order, and the RNG state the order was drawn from.</summary>
/// <param name="Epoch">Completed passes over the training sequences.</param>
/// <param name="Cursor">Next index into this epoch's permutation.</param>
/// <param name="EpochRng">The loader RNG's state when this epoch's permutation was drawn.</param>
public sealed record DataPosition(int Epoch, int Cursor, ulong[] EpochRng)
{
    /// <summary>The text form stored in checkpoints: <c>epoch;cursor;w0,w1,w2,w3</c>.</summary>
    public override string ToString() =>
        $"{Epoch};{Cursor};{string.Join(",", EpochRng.Select(w => w.ToString("x16", CultureInfo.InvariantCulture)))}";

    /// <summary>Parses <see cref="ToString"/>'s form.</summary>
    public static DataPosition Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string[] parts = text.Split(';');
        try
        {
            return parts.Length == 3
                ? new DataPosition(int.Parse(parts[0], CultureInfo.InvariantCulture), int.Parse(parts[1], CultureInfo.InvariantCulture), [.. parts[2].Split(',').Select(w => ulong.Parse(w, NumberStyles.HexNumber, CultureInfo.InvariantCulture))])
                : throw new FormatException();
        }
        catch (FormatException)
        {
            throw new InvalidDataException($"data position '{text}' is not epoch;cursor;rng");
        }
    }
}

/// <summary>
/// Documents tokenised and packed into fixed-length sequences: each document followed by the
/// end-of-text id, concatenated, cut into non-overlapping sequences of T tokens. Every 20th
/// document goes to validation (by position, so the split is the same on every run). Training
/// batches follow a per-epoch permutation drawn from a seeded <see cref="Rng"/>, so a reader
/// restored from its <see cref="DataPosition"/> yields exactly the batches it would have.
/// </summary>
public sealed class PackedDataset
{
    private readonly int[] train;
    private readonly int[] validation;
    private readonly Rng rng;
    private int[] order = [];

    /// <summary>Tokenises and packs <paramref name="documents"/>.</summary>
    public PackedDataset(IEnumerable<string> documents, TextTokenizer tokenizer, int sequenceLength, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(documents);
        ArgumentNullException.ThrowIfNull(tokenizer);
        SequenceLength = sequenceLength;
        var trainTokens = new List<int>();
        var valTokens = new List<int>();
        int index = 0;
        foreach (string doc in documents)
        {
            var target = index++ % 20 == 19 ? valTokens : trainTokens;
            target.AddRange(tokenizer.Encode(doc));
            if (tokenizer.EndOfText is int eot)
            {
                target.Add(eot);
            }
        }

        Documents = index;
        train = [.. trainTokens];
        validation = [.. valTokens];
        if (TrainSequences == 0)
        {
            throw new InvalidDataException($"the corpus has {train.Length} training tokens, fewer than one sequence of {sequenceLength}");
        }

        rng = new Rng(seed);
        Position = NewEpoch(0);
    }

    /// <summary>Tokens per sequence T.</summary>
    public int SequenceLength { get; }

    /// <summary>Documents read.</summary>
    public int Documents { get; }

    /// <summary>Training tokens.</summary>
    public long TrainTokens => train.Length;

    /// <summary>Validation tokens.</summary>
    public long ValidationTokens => validation.Length;

    /// <summary>Training sequences per epoch.</summary>
    public int TrainSequences => train.Length / SequenceLength;

    /// <summary>Validation sequences.</summary>
    public int ValidationSequences => validation.Length / SequenceLength;

    /// <summary>The reader's position (saved in checkpoints).</summary>
    public DataPosition Position { get; private set; }

    /// <summary>Continues from a saved position.</summary>
    public void Seek(DataPosition position)
    {
        ArgumentNullException.ThrowIfNull(position);
        rng.State = position.EpochRng;
        Position = NewEpoch(position.Epoch) with { Cursor = position.Cursor };
    }

    /// <summary>Fills <paramref name="ids"/> with the next <c>ids.Length / T</c> training sequences.</summary>
    public void NextBatch(Span<int> ids)
    {
        for (int offset = 0; offset < ids.Length; offset += SequenceLength)
        {
            if (Position.Cursor == order.Length)
            {
                Position = NewEpoch(Position.Epoch + 1);
            }

            train.AsSpan(order[Position.Cursor] * SequenceLength, SequenceLength).CopyTo(ids[offset..]);
            Position = Position with { Cursor = Position.Cursor + 1 };
        }
    }

    /// <summary>Validation sequence <paramref name="index"/> (the same every run).</summary>
    public ReadOnlySpan<int> ValidationSequence(int index) => validation.AsSpan(index * SequenceLength, SequenceLength);

    private DataPosition NewEpoch(int epoch)
    {
        ulong[] epochRng = rng.State;
        order = [.. Enumerable.Range(0, TrainSequences)];
        rng.Shuffle(order.AsSpan());
        return new DataPosition(epoch, 0, epochRng);
    }
}
