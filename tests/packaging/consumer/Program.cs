// A forward pass through the packages: the fixture model's loss on its reference ids, on the
// managed cpu backend and on the native one (libra3_native from RA3.Native.linux-x64's
// runtimes/linux-x64/native), each compared with the loss transformers computed.
using RA3.Kernels;
using RA3.Kernels.Native;
using RA3.Model;
using RA3.Model.IO;

if (args.Length != 1)
{
    Console.Error.WriteLine("usage: Consumer HUGGING_FACE_FIXTURE_FOLDER");
    return 2;
}

using var reference = SafeTensorsFile.Open(Path.Combine(args[0], "reference.safetensors"));
int[] ids = reference.ReadInts("input_ids");
int time = reference.Info("input_ids").Shape[1];
float want = reference.ReadFloats("loss")[0];
int failures = 0;
foreach (string name in new[] { "cpu", "native" })
{
    using var backend = BackendCatalog.Create(name);
    using var model = HuggingFaceCheckpoint.Load(args[0], backend);
    using var plan = model.Plan(ids.Length / time, time, PassKind.Score);
    plan.SetBatch(ids);
    double loss = model.Forward(plan);
    bool close = Math.Abs(loss - want) <= 1e-5;
    failures += close ? 0 : 1;
    Console.WriteLine($"{name}: loss {loss:F6}, transformers {want:F6}{(close ? "" : " (differs)")}");
}

Console.WriteLine($"ra3_native from {NativeLibraryLoader.LoadedFrom}");
return failures == 0 ? 0 : 1;
