using System.Collections.Concurrent;
using RA3.Kernels;
using RA3.Kernels.Ops;
using RA3.Model;
using RA3.Model.Scoring;
using RA3.Model.Tokenizers;

namespace RA3.CApi;

/// <summary>
/// What a model handle stands for: the model on its backend, its tokenizer, and the lock that
/// serialises calls on it (a model's plans and buffers serve one call at a time); the registry of
/// live handles.
/// </summary>
internal sealed class Engine : IDisposable
{
    private static readonly ConcurrentDictionary<nint, Engine> Live = new();
    private static long lastHandle;

    private Engine(Backend backend, Transformer model, TextTokenizer tokenizer)
    {
        Backend = backend;
        Model = model;
        Tokenizer = tokenizer;
    }

    /// <summary>The backend the model computes on.</summary>
    public Backend Backend { get; }

    /// <summary>The model.</summary>
    public Transformer Model { get; }

    /// <summary>Its tokenizer.</summary>
    public TextTokenizer Tokenizer { get; }

    private Lock Gate { get; } = new();

    /// <summary>Loads a model as <c>ra3 score</c> does and registers it; returns its handle.</summary>
    public static nint Load(string model, string? tokenizer, string? backend)
    {
        var compute = CreateBackend(backend);
        try
        {
            var transformer = Scorer.LoadModel(model, compute);
            try
            {
                var engine = new Engine(compute, transformer, TokenizerLoader.Load(tokenizer ?? model));
                nint handle = (nint)Interlocked.Increment(ref lastHandle);
                Live[handle] = engine;
                return handle;
            }
            catch
            {
                transformer.Dispose();
                throw;
            }
        }
        catch
        {
            compute.Dispose();
            throw;
        }
    }

    /// <summary>A host backend by name (null: cpu); a backend this machine cannot run (the native library missing or of another ABI) is <see cref="NotSupportedException"/>.</summary>
    public static Backend CreateBackend(string? name)
    {
        try
        {
            return HostBackends.Create(name ?? "cpu");
        }
        catch (InvalidOperationException e)
        {
            throw new NotSupportedException(e.Message, e);
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/> on the live model of <paramref name="handle"/>, holding its lock:
    /// one call at a time per model, and none on a model another thread has freed meanwhile.
    /// <see cref="ArgumentException"/> for NULL, a freed or a never-loaded handle.
    /// </summary>
    public static T With<T>(nint handle, Func<Engine, T> body)
    {
        var engine = Live.TryGetValue(Checked(handle), out var found) ? found : throw NotLoaded(handle);
        lock (engine.Gate)
        {
            return Live.ContainsKey(handle) ? body(engine) : throw NotLoaded(handle);
        }
    }

    /// <summary><see cref="With{T}"/> for a body that returns nothing.</summary>
    public static void With(nint handle, Action<Engine> body) => With(handle, engine =>
    {
        body(engine);
        return 0;
    });

    /// <summary>Unregisters and disposes the model of <paramref name="handle"/>, after any call running on it.</summary>
    public static void Free(nint handle) => With(handle, engine =>
    {
        Live.TryRemove(handle, out _);
        engine.Dispose();
    });

    private static nint Checked(nint handle) => handle == 0 ? throw new ArgumentException("model is NULL") : handle;

    private static ArgumentException NotLoaded(nint handle) => new($"model 0x{handle:x} is not a loaded model (freed, or not from ra3_engine_load)");

    /// <inheritdoc/>
    public void Dispose()
    {
        Model.Dispose();
        Backend.Dispose();
    }
}
