using RA3.Train.Cli;

return CommandLine.Run(args, Console.Out, Console.Error);
