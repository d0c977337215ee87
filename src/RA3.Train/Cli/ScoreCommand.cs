using System.Globalization;
using RA3.Model.IO;
using RA3.Model.Scoring;
using RA3.Model.Tokenizers;
using RA3.Train.Runs;
using RA3.Train.Scoring;

namespace RA3.Train.Cli;

/// <summary><c>ra3 score</c>: mean next-token loss and per-token log-probabilities of text or token ids under a model.</summary>
public static class ScoreCommand
{
    /// <summary>Usage text: every option of <see cref="ScoreSettings"/> with its default.</summary>
    public static string Usage { get; } = SettingsCommandLine.Usage<ScoreSettings>("usage: ra3 score --model DIR (--text FILE | --ids FILE) [options]");

    /// <summary>Runs the command.</summary>
    public static int Run(IEnumerable<string> args, TextWriter stdout)
    {
        var (s, _) = SettingsCommandLine.Parse<ScoreSettings>(args);
        s.CheckInput();
        string model = s.Model!, backendName = s.Backend;
        string? text = s.Text, idsPath = s.Ids, tokenizerSpec = s.Tokenizer;
        bool keepLogits = s.Logits;
        string output = s.Out ?? (text ?? idsPath) + ".scores.safetensors";

        using var backend = BackendChoice.Create(backendName);
        using var transformer = Scorer.LoadModel(model, backend, WeightStorage.Parse(s.DType));
        int[] ids;
        int batch, time;
        if (idsPath is not null)
        {
            using var file = SafeTensorsFile.Open(idsPath);
            var info = file.Info("input_ids");
            if (info.Shape.Length != 2)
            {
                throw new InvalidDataException($"{idsPath}: input_ids must be [B, T], got [{string.Join(", ", info.Shape)}]");
            }

            (batch, time) = (info.Shape[0], info.Shape[1]);
            ids = file.ReadInts("input_ids");
        }
        else
        {
            var tokenizer = TokenizerLoader.Load(tokenizerSpec ?? model);
            ids = tokenizer.EncodeDocument(File.ReadAllText(text!)).Ids;
            (batch, time) = (1, ids.Length);
        }

        var scores = Scorer.Score(transformer, ids, batch, time, keepLogits);
        var entries = new List<SafeTensorsWriter.Entry>
        {
            SafeTensorsWriter.Int64s("input_ids", ids, batch, time),
            SafeTensorsWriter.Floats("logprobs", scores.LogProbs, batch, time - 1),
        };
        if (scores.Logits is not null)
        {
            entries.Add(SafeTensorsWriter.Floats("logits", scores.Logits, batch, time, transformer.Config.VocabSize));
        }

        SafeTensorsWriter.Write(output, entries, new Dictionary<string, string> { ["mean_loss"] = scores.MeanLoss.ToString("R", CultureInfo.InvariantCulture) });
        stdout.WriteLine($"mean loss {scores.MeanLoss.ToString("F6", CultureInfo.InvariantCulture)} over {scores.Targets} targets ({batch} × {time} tokens); wrote {output}");
        return 0;
    }
}
