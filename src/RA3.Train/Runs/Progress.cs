using System.Diagnostics;

namespace RA3.Train.Runs;

/// <summary>
/// A one-line progress display: step, loss, tokens/s and ETA, redrawn in place on a terminal and
/// printed every <c>every</c> steps when the output is a file or pipe.
/// </summary>
public sealed class Progress(TextWriter output, int totalSteps, int firstStep, bool interactive, int every = 10)
{
    private readonly Stopwatch clock = Stopwatch.StartNew();
    private long tokens;

    /// <summary>Reports a finished step.</summary>
    public void Step(int step, double loss, long stepTokens, string extra = "")
    {
        tokens += stepTokens;
        double seconds = clock.Elapsed.TotalSeconds, perSecond = tokens / Math.Max(seconds, 1e-9);
        int done = step - firstStep, left = totalSteps - step;
        var eta = TimeSpan.FromSeconds(done > 0 ? seconds / done * left : 0);
        int width = 24, filled = (int)Math.Round(width * (double)step / Math.Max(totalSteps, 1));
        string line = $"[{new string('#', filled)}{new string('.', width - filled)}] step {step}/{totalSteps}  loss {loss:F4}  {perSecond:N0} tok/s  ETA {eta:hh\\:mm\\:ss}{extra}";
        if (interactive)
        {
            output.Write("\r" + line.PadRight(100));
            if (step == totalSteps)
            {
                output.WriteLine();
            }
        }
        else if (step % every == 0 || step == totalSteps || done == 1)
        {
            output.WriteLine(line);
        }
    }

    /// <summary>Tokens per second so far.</summary>
    public double TokensPerSecond => tokens / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);

    /// <summary>Prints a message on its own line (ending a redrawn line first).</summary>
    public void Message(string text)
    {
        if (interactive)
        {
            output.WriteLine();
        }

        output.WriteLine(text);
    }
}
