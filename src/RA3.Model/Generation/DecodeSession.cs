using RA3.Model.Config;

namespace RA3.Model.Generation;

/// <summary>
/// B sequences advancing together through one KV cache: <see cref="Start"/> prefills right-padded
/// prompts, then each <see cref="Feed"/> appends one token per sequence at its own position and
/// leaves the next-token logits [B, V]. The caller decides every token — sampled, forced or
/// padding for a sequence that has finished — which is what plain generation and the E-step's
/// rollouts (code lines forced, decisions and rationales sampled) both need.
/// </summary>
public sealed class DecodeSession : IDisposable
{
    private readonly Transformer model;
    private readonly KvCache cache;
    private readonly Activations? decode;
    private readonly float[] logits;

    /// <summary>Opens a session for <paramref name="batch"/> sequences of at most <paramref name="capacity"/> positions.</summary>
    public DecodeSession(Transformer model, int batch, int capacity)
    {
        ArgumentNullException.ThrowIfNull(model);
        var c = model.Config;
        c.CheckPositions(capacity, "a decode session");

        this.model = model;
        cache = new KvCache(model.Backend, c, batch, capacity);
        decode = capacity > 1 ? model.Plan(batch, 1, PassKind.Decode) : null;
        logits = new float[batch * c.VocabSize];
    }

    /// <summary>Number of sequences B.</summary>
    public int B => cache.B;

    /// <summary>Positions each sequence may reach.</summary>
    public int Capacity => cache.Capacity;

    /// <summary>Positions filled per sequence.</summary>
    public IReadOnlyList<int> Lengths => cache.Lengths;

    /// <summary>Prefills one prompt per sequence (at least one token each) and leaves the logits after each prompt's last token.</summary>
    public void Start(IReadOnlyList<int[]> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        if (prompts.Count != B || prompts.Any(p => p.Length == 0))
        {
            throw new ArgumentException($"a session of {B} sequences needs {B} prompts of at least one token, got {prompts.Count}");
        }

        int longest = prompts.Max(p => p.Length);
        if (longest > Capacity)
        {
            throw new ArgumentException($"a prompt of {longest} tokens exceeds the session's {Capacity} positions");
        }

        using var prefill = model.Plan(B, longest, PassKind.Prefill);
        var ids = new int[B * longest];
        for (int b = 0; b < B; b++)
        {
            prompts[b].CopyTo(ids, b * longest);
        }

        model.Config.CheckTokenIds(ids, "prompt ids");
        prefill.Ids.CopyFrom<int>(ids);
        model.Prefill(prefill, cache, [.. prompts.Select(p => p.Length)]);
        prefill.Logits!.CopyTo<float>(logits);
    }

    /// <summary>Appends <paramref name="tokens"/> [B] (one per sequence) and computes the next logits.</summary>
    public void Feed(ReadOnlySpan<int> tokens)
    {
        model.Decode(decode ?? throw new InvalidOperationException("a session of one position cannot decode"), cache, tokens);
        decode.Logits!.CopyTo<float>(logits);
    }

    /// <summary>Next-token logits [V] of sequence <paramref name="b"/> after its last token.</summary>
    public ReadOnlySpan<float> Logits(int b)
    {
        int v = model.Config.VocabSize;
        return logits.AsSpan(b * v, v);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        decode?.Dispose();
        cache.Dispose();
    }
}
