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
/// Documents tokenised and packed into fixed-length sequences: each document (its canonical
/// document encoding) followed by the end-of-text id, concatenated, cut into non-overlapping
/// sequences of T tokens. Every 20th document goes to validation (by position, so the split is the
/// same on every run). Training batches follow a per-epoch permutation drawn from a seeded
/// <see cref="Rng"/>, so a reader restored from its <see cref="DataPosition"/> yields exactly the
/// batches it would have. The documents come from memory or from memory-mapped token shards; the
/// dataset keeps only where each document starts in the packed streams (8 bytes a document).
/// </summary>
public sealed class PackedDataset : IDisposable
{
    private readonly ITokenDocuments documents;
    private readonly int? separator;
    private readonly Stream train;
    private readonly Stream validation;
    private readonly Rng rng;
    private int[] order = [];

    /// <summary>Tokenises and packs <paramref name="texts"/> (held in memory).</summary>
    public PackedDataset(IEnumerable<string> texts, TextTokenizer tokenizer, int sequenceLength, ulong seed)
        : this(new TokenDocuments([.. Tokenize(texts, tokenizer)]), tokenizer.EndOfText, sequenceLength, seed)
    {
    }

    /// <summary>Packs <paramref name="documents"/>, separated by <paramref name="separator"/> when there is one; the dataset owns them (disposes shards).</summary>
    public PackedDataset(ITokenDocuments documents, int? separator, int sequenceLength, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(documents);
        ArgumentOutOfRangeException.ThrowIfLessThan(sequenceLength, 1);
        this.documents = documents;
        this.separator = separator;
        SequenceLength = sequenceLength;
        Documents = documents.Count;
        int extra = separator is null ? 0 : 1;
        var trainStarts = new List<long>();
        var trainDocs = new List<long>();
        var validationStarts = new List<long>();
        var validationDocs = new List<long>();
        long trainLength = 0, validationLength = 0;
        for (long d = 0; d < documents.Count; d++)
        {
            int length = documents.Length(d) + extra;
            if (d % 20 == 19)
            {
                validationStarts.Add(validationLength);
                validationDocs.Add(d);
                validationLength += length;
            }
            else
            {
                trainStarts.Add(trainLength);
                trainDocs.Add(d);
                trainLength += length;
            }
        }

        train = new Stream([.. trainStarts], [.. trainDocs], trainLength);
        validation = new Stream([.. validationStarts], [.. validationDocs], validationLength);
        if (TrainSequences == 0)
        {
            documents.Dispose();
            throw new InvalidDataException($"the corpus has {trainLength} training tokens, fewer than one sequence of {sequenceLength}");
        }

        rng = new Rng(seed);
        Position = NewEpoch(0);
    }

    /// <summary>Tokens per sequence T.</summary>
    public int SequenceLength { get; }

    /// <summary>Documents read.</summary>
    public long Documents { get; }

    /// <summary>Training tokens.</summary>
    public long TrainTokens => train.Length;

    /// <summary>Validation tokens.</summary>
    public long ValidationTokens => validation.Length;

    /// <summary>Training sequences per epoch.</summary>
    public int TrainSequences => (int)Math.Min(int.MaxValue, train.Length / SequenceLength);

    /// <summary>Validation sequences.</summary>
    public int ValidationSequences => (int)Math.Min(int.MaxValue, validation.Length / SequenceLength);

    /// <summary>The reader's position (saved in checkpoints).</summary>
    public DataPosition Position { get; private set; }

    /// <summary>
    /// The documents of <paramref name="data"/> for <paramref name="tokenizer"/>: a token-shard folder
    /// (<c>ra3 tokenize --shards</c>, memory-mapped) or a corpus of text (<see cref="Corpus.Read"/>).
    /// </summary>
    public static PackedDataset Open(string data, TextTokenizer tokenizer, int sequenceLength, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return TokenShards.IsShardFolder(data)
            ? new PackedDataset(TokenShards.Open(data, tokenizer), tokenizer.EndOfText, sequenceLength, seed)
            : new PackedDataset(Corpus.Read(data), tokenizer, sequenceLength, seed);
    }

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

            Read(train, (long)order[Position.Cursor] * SequenceLength, ids.Slice(offset, SequenceLength));
            Position = Position with { Cursor = Position.Cursor + 1 };
        }
    }

    /// <summary>Copies validation sequence <paramref name="index"/> (the same every run) into <paramref name="ids"/> (T tokens).</summary>
    public void ValidationSequence(int index, Span<int> ids) => Read(validation, (long)index * SequenceLength, ids[..SequenceLength]);

    /// <inheritdoc/>
    public void Dispose() => documents.Dispose();

    private static IEnumerable<int[]> Tokenize(IEnumerable<string> texts, TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentNullException.ThrowIfNull(tokenizer);
        return texts.Select(text => tokenizer.EncodeDocument(text).Ids);
    }

    // Tokens [at, at + destination.Length) of a packed stream: whole documents and their separators, across as many as it takes.
    private void Read(Stream stream, long at, Span<int> destination)
    {
        int i = Array.BinarySearch(stream.Starts, at);
        i = i >= 0 ? i : ~i - 1;
        while (destination.Length > 0)
        {
            while (i + 1 < stream.Starts.Length && stream.Starts[i + 1] <= at)
            {
                i++;  // past empty documents
            }

            long document = stream.Documents[i];
            int offset = (int)(at - stream.Starts[i]), length = documents.Length(document);
            int n = Math.Min(destination.Length, length - offset);
            if (n > 0)
            {
                documents.Copy(document, offset, destination[..n]);
            }
            else
            {
                n = 1;
                destination[0] = separator!.Value;  // past the document's tokens: its separator
            }

            destination = destination[n..];
            at += n;
        }
    }

    private DataPosition NewEpoch(int epoch)
    {
        ulong[] epochRng = rng.State;
        order = [.. Enumerable.Range(0, TrainSequences)];
        rng.Shuffle(order.AsSpan());
        return new DataPosition(epoch, 0, epochRng);
    }

    /// <summary>One packed stream: where each of its documents starts in it, which document that is, and its length.</summary>
    private sealed record Stream(long[] Starts, long[] Documents, long Length);
}
