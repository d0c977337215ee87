using RA3.Train.Cli;
using RA3.Train.Runs;

// SIGTERM / SIGINT stop a long command at its next step boundary, after a checkpoint (StopSignal).
using (StopSignal.Install())
{
    return CommandLine.Run(args, Console.Out, Console.Error);
}
