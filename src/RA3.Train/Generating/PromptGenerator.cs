using System.Text.Json;
using System.Text.Json.Nodes;
using RA3.Model;
using RA3.Model.Generation;
using RA3.Model.Tokenizers;

namespace RA3.Train.Generating;

/// <summary>One prompt's continuation as <c>ra3 generate</c> reports it.</summary>
/// <param name="Prompt">The prompt.</param>
/// <param name="Completion">The generated text.</param>
/// <param name="FinishReason"><c>eos</c>, <c>length</c>, …</param>
/// <param name="NewTokens">Tokens generated.</param>
public sealed record PromptCompletion(string Prompt, string Completion, string FinishReason, int NewTokens);

/// <summary>
/// Continues prompts one at a time with a model, writing the text to <c>output</c> as each token is
/// drawn. A prompt is encoded as the start of a document (<see cref="TextTokenizer.EncodePrompt"/>:
/// what the model saw in pre-training), and prompt i samples from seed + i, so a prompt's text does
/// not depend on the prompts before it.
/// </summary>
public sealed class PromptGenerator(Transformer model, TextTokenizer tokenizer, SamplingOptions sampling)
{
    private readonly Generator generator = new(model, tokenizer);

    /// <summary>Continues <paramref name="prompt"/> (the <paramref name="index"/>-th), streaming to <paramref name="output"/>.</summary>
    public PromptCompletion Continue(string prompt, int index, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(output);
        int[] ids = tokenizer.EncodePrompt(prompt);
        if (ids.Length == 0)
        {
            throw new ArgumentException($"prompt {index + 1} is empty and the tokenizer has no end-of-text token to start from");
        }

        var stream = new TextStream(tokenizer, ids);
        var eos = new HashSet<int>(model.Config.EosTokenIds);
        if (tokenizer.EndOfText is int eot)
        {
            eos.Add(eot);
        }

        var result = generator.Generate([ids], sampling with { Seed = sampling.Seed + (ulong)index }, (_, token) =>
        {
            if (!eos.Contains(token))
            {
                output.Write(stream.Push(token));
                output.Flush();
            }
        })[0];
        output.Write(stream.Flush());
        output.Flush();
        return new PromptCompletion(prompt, result.Text ?? string.Empty, result.FinishReason, result.Tokens.Length);
    }

    /// <summary>The prompts of a jsonl file: each line's <c>prompt</c> (or <c>text</c>); a line without one is named.</summary>
    public static IEnumerable<string> ReadPrompts(string path)
    {
        int number = 0;
        foreach (string line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            JsonNode? node;
            try
            {
                node = JsonNode.Parse(line);
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path}:{number}: not valid JSON ({e.Message})", e);
            }

            yield return (node?["prompt"] ?? node?["text"]) is JsonValue v && v.TryGetValue(out string? text)
                ? text
                : throw new InvalidDataException($"{path}:{number}: no \"prompt\" (or \"text\") string");
        }
    }
}
