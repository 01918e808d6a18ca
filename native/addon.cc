// The Node-API surface of kiln (typed once, in src/native/binding.ts). Small on purpose: build an
// engine from a Plan, load one from bytes, run a plan once (constant folding), and the NativeEngine
// object. Slow calls are AsyncWorkers that keep their owner alive while they run. Native failures reach
// JS as Errors whose message starts with "[CODE] ", which src/errors.ts turns into KilnErrors.
#include <napi.h>

#include <atomic>
#include <memory>
#include <thread>

#include "backend.h"
#include "engine_format.h"
#include "executor.h"
#include "threadpool.h"

#ifndef KILN_VERSION
#define KILN_VERSION "0.0.0"
#endif

namespace kiln {

namespace {

Napi::Error to_js(Napi::Env env, const std::exception& e) {
  if (auto* k = dynamic_cast<const Error*>(&e)) return Napi::Error::New(env, "[" + k->code() + "] " + k->what());
  return Napi::Error::New(env, std::string("[INTERNAL] ") + e.what());
}

#define REQUIRE_ARG(cond, msg) \
  if (!(cond)) throw Napi::TypeError::New(info.Env(), msg)

// Copies a Uint8Array / Buffer argument.
std::vector<uint8_t> bytes_arg(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a Uint8Array");
  auto a = v.As<Napi::TypedArray>();
  auto* p = static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  return std::vector<uint8_t>(p, p + a.ByteLength());
}

// A view of a typed array argument whose memory the caller keeps alive (by holding a reference).
const void* view_arg(const Napi::Value& v, size_t* len) {
  auto a = v.As<Napi::TypedArray>();
  *len = a.ByteLength();
  return static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') { o += '\\'; o += c; }
    else if (static_cast<unsigned char>(c) < 0x20) o += ' ';
    else o += c;
  }
  return o;
}

// Validated run inputs: sizes checked against the plan (TS checked names, dtypes and shapes already).
std::vector<const void*> gather_inputs(const Napi::Array& arr, const Plan& plan, std::vector<Napi::Reference<Napi::Value>>* keep) {
  if (arr.Length() != plan.inputs.size())
    throw Napi::TypeError::New(arr.Env(), "expected " + std::to_string(plan.inputs.size()) + " inputs, got " + std::to_string(arr.Length()));
  std::vector<const void*> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value v = arr.Get(i);
    if (!v.IsTypedArray()) throw Napi::TypeError::New(arr.Env(), "input " + std::to_string(i) + " must be a typed array");
    size_t len;
    const void* p = view_arg(v, &len);
    const PlanTensor& t = plan.tensors[plan.inputs[i]];
    if (len != t.nbytes())
      throw Napi::RangeError::New(arr.Env(), "input '" + t.name + "' holds " + std::to_string(len) + " bytes, shape " +
                                                 shape_str(t.shape) + " of " + dtype_name(t.dtype) + " needs " + std::to_string(t.nbytes()));
    out.push_back(p);
    if (keep) keep->push_back(Napi::Persistent(v));
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::FunctionReference* ctor(Napi::Env env) { return env.GetInstanceData<Napi::FunctionReference>(); }
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeEngine",
                       {InstanceMethod("infer", &EngineWrap::Infer), InstanceMethod("profile", &EngineWrap::Profile),
                        InstanceMethod("timeRuns", &EngineWrap::TimeRuns),
                        InstanceMethod("serialize", &EngineWrap::Serialize), InstanceMethod("describe", &EngineWrap::Describe),
                        InstanceMethod("dispose", &EngineWrap::Dispose)});
  }
  EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {}

  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<Executor> ex, EngineHeader h, std::string meta,
                           std::shared_ptr<const std::vector<uint8_t>> plan_bytes) {
    Napi::Object o = ctor(env)->New({});
    EngineWrap* w = Unwrap(o);
    w->ex_ = std::move(ex);
    w->header_ = std::move(h);
    w->meta_ = std::move(meta);
    w->plan_bytes_ = std::move(plan_bytes);
    return o;
  }

 private:
  std::shared_ptr<Executor> live(Napi::Env env) {
    if (!ex_) throw Napi::Error::New(env, "[DISPOSED] the engine was disposed; load or build it again");
    return ex_;
  }

  class RunWorker : public Napi::AsyncWorker {
   public:
    enum Mode { Infer, Profile, Time };
    RunWorker(Napi::Env env, std::shared_ptr<Executor> ex, Mode mode, int iterations = 0)
        : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), ex_(std::move(ex)), mode_(mode), iterations_(iterations) {}
    Napi::Promise promise() { return deferred_.Promise(); }
    std::vector<const void*> inputs;
    std::vector<void*> outputs;
    std::vector<Napi::Reference<Napi::Value>> keep;
    Napi::Reference<Napi::Array> out_arr;
    void Execute() override {
      try {
        if (mode_ == Profile) times_ = ex_->profile(inputs, outputs);
        else if (mode_ == Time) times_ = ex_->time_runs(inputs, iterations_);
        else ex_->run(inputs, outputs);
      } catch (const std::exception& e) {
        auto* k = dynamic_cast<const Error*>(&e);
        SetError(k ? "[" + k->code() + "] " + k->what() : std::string("[INTERNAL] ") + e.what());
      }
    }
    void OnOK() override {
      Napi::Env env = Env();
      if (mode_ == Infer) return deferred_.Resolve(out_arr.Value());
      Napi::Array t = Napi::Array::New(env, times_.size());
      for (size_t i = 0; i < times_.size(); ++i) t.Set(static_cast<uint32_t>(i), times_[i]);
      if (mode_ == Time) return deferred_.Resolve(t);
      Napi::Object r = Napi::Object::New(env);
      r.Set("outputs", out_arr.Value());
      r.Set("times", t);
      deferred_.Resolve(r);
    }
    void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

   private:
    Napi::Promise::Deferred deferred_;
    std::shared_ptr<Executor> ex_;
    Mode mode_;
    int iterations_;
    std::vector<double> times_;
  };

  Napi::Value Run(const Napi::CallbackInfo& info, RunWorker::Mode mode) {
    Napi::Env env = info.Env();
    auto ex = live(env);
    REQUIRE_ARG(info.Length() >= 1 && info[0].IsArray(), "infer(inputs): inputs must be an array of typed arrays");
    int iterations = 0;
    if (mode == RunWorker::Time) {
      REQUIRE_ARG(info.Length() >= 2 && info[1].IsNumber(), "timeRuns(inputs, iterations): iterations must be a number");
      iterations = info[1].As<Napi::Number>().Int32Value();
      if (iterations < 1 || iterations > 1000000) throw Napi::RangeError::New(env, "timeRuns: iterations must be between 1 and 1000000");
    }
    auto* w = new RunWorker(env, ex, mode, iterations);
    try {
      w->inputs = gather_inputs(info[0].As<Napi::Array>(), ex->plan(), &w->keep);
      const Plan& p = ex->plan();
      Napi::Array outs = Napi::Array::New(env, p.outputs.size());
      for (size_t i = 0; i < p.outputs.size(); ++i) {
        Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, std::max<size_t>(p.tensors[p.outputs[i]].nbytes(), 1));
        w->outputs.push_back(ab.Data());
        outs.Set(static_cast<uint32_t>(i), ab);
      }
      w->out_arr = Napi::Persistent(outs);
      w->keep.push_back(Napi::Persistent(info.This()));  // the engine stays alive while the run is in flight
    } catch (...) {
      delete w;
      throw;
    }
    Napi::Promise pr = w->promise();
    w->Queue();
    return pr;
  }
  Napi::Value Infer(const Napi::CallbackInfo& info) { return Run(info, RunWorker::Infer); }
  Napi::Value Profile(const Napi::CallbackInfo& info) { return Run(info, RunWorker::Profile); }
  Napi::Value TimeRuns(const Napi::CallbackInfo& info) { return Run(info, RunWorker::Time); }

  Napi::Value Serialize(const Napi::CallbackInfo& info) {
    auto ex = live(info.Env());
    try {
      auto bytes = write_engine(header_, *plan_bytes_, ex->choices(), meta_);
      return Napi::Buffer<uint8_t>::Copy(info.Env(), bytes.data(), bytes.size());
    } catch (const std::exception& e) {
      throw to_js(info.Env(), e);
    }
  }

  Napi::Value Describe(const Napi::CallbackInfo& info) {
    auto ex = live(info.Env());
    const Plan& p = ex->plan();
    std::string j = "{\"header\":{\"formatVersion\":" + std::to_string(header_.format_version) + ",\"kilnVersion\":\"" +
                    json_escape(header_.kiln_version) + "\",\"backend\":\"" + json_escape(header_.backend) + "\",\"device\":\"" +
                    json_escape(header_.device) + "\",\"capability\":\"" + json_escape(header_.capability) +
                    "\",\"libraries\":" + (header_.libraries.empty() ? "{}" : header_.libraries) +
                    ",\"buildOptions\":" + (header_.build_options.empty() ? "{}" : header_.build_options) + "}";
    j += ",\"memory\":{\"arenaBytes\":" + std::to_string(ex->arena_bytes()) + ",\"workspaceBytes\":" +
         std::to_string(ex->workspace_bytes()) + ",\"constantBytes\":" + std::to_string(ex->constant_bytes()) + "}";
    j += ",\"layers\":[";
    for (size_t k = 0; k < p.ops.size(); ++k) {
      const auto& c = ex->choices()[k];
      j += std::string(k ? "," : "") + "{\"name\":\"" + json_escape(p.ops[k].name) + "\",\"kind\":\"" + json_escape(p.ops[k].kind) +
           "\",\"backend\":\"" + json_escape(c.backend) + "\",\"transferBytes\":" + std::to_string(ex->transfer_bytes(k)) +
           ",\"signature\":\"" + json_escape(ex->signature(k)) + "\"" +
           ",\"tactic\":\"" + json_escape(c.tactic) + "\",\"candidates\":[";
      for (size_t i = 0; i < c.candidates.size(); ++i)
        j += std::string(i ? "," : "") + "{\"tactic\":\"" + json_escape(c.candidates[i].tactic) + "\",\"ms\":" +
             (c.candidates[i].ms < 0 ? std::string("null") : std::to_string(c.candidates[i].ms)) +
             (c.candidates[i].error.empty() ? std::string() : ",\"error\":\"" + json_escape(c.candidates[i].error) + "\"") + "}";
      j += "]}";
    }
    j += "],\"plan\":" + plan_to_json(p) + ",\"meta\":" + (meta_.empty() ? "null" : meta_) + "}";
    return Napi::String::New(info.Env(), j);
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    ex_.reset();  // in-flight runs hold their own reference; memory goes when the last finishes
    plan_bytes_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<Executor> ex_;
  EngineHeader header_;
  std::string meta_;
  std::shared_ptr<const std::vector<uint8_t>> plan_bytes_;
};

// ---------------------------------------------------------------------------------------------------
class BuildWorker : public Napi::AsyncWorker {
 public:
  BuildWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  // Build inputs
  bool loading = false;
  std::shared_ptr<const std::vector<uint8_t>> bytes;
  EngineHeader header;
  std::string meta;
  BuildOptions opts;
  std::unordered_map<std::string, double> cache;
  Napi::Reference<Napi::Value> cancel_ref;
  std::atomic<int>* cancel_flag = nullptr;
  Napi::ThreadSafeFunction progress;
  bool has_progress = false;

  void Execute() override {
    try {
      if (loading) {
        EngineParts parts = read_engine(bytes->data(), bytes->size());
        header = parts.header;
        meta = parts.meta;
        Backend* be = find_backend(header.backend);
        if (!be)
          fail("ENGINE_MISMATCH", "engine header: built for the '" + header.backend + "' backend on '" + header.device +
                                      "', but this kiln addon has no " + header.backend + " backend; load it where " + header.backend +
                                      " is available, or rebuild the engine with device: 'cpu'");
        if (header.backend != "cpu") be->use_device(opts.device_id);  // loadEngine's deviceId: the device checked and used
        if (header.backend != "cpu" && (be->device() != header.device || be->capability() != header.capability))
          fail("ENGINE_MISMATCH", "engine header: built for " + header.device + " (" + header.capability + "), this machine has " +
                                      be->device() + " (" + be->capability() + "); rebuild the engine on this machine");
        if (header.backend != "cpu" && be->libraries() != header.libraries)
          fail("ENGINE_MISMATCH", "engine header: built with libraries " + header.libraries + ", this machine has " + be->libraries() +
                                      "; rebuild the engine");
        bytes = parts.plan;
        auto plan = decode_plan(bytes, "engine section PLAN");
        ex_ = Executor::load(plan, header.backend, parts.choices, opts.device_id);
      } else {
        auto plan = decode_plan(bytes, "plan");
        opts.cancel = cancel_flag;
        if (has_progress)
          opts.progress = [this](size_t done, size_t total, const std::string& name) {
            progress.NonBlockingCall([done, total, name](Napi::Env env, Napi::Function cb) {
              cb.Call({Napi::Number::New(env, static_cast<double>(done)), Napi::Number::New(env, static_cast<double>(total)),
                       Napi::String::New(env, name)});
            });
          };
        ex_ = Executor::build(plan, opts);
      }
    } catch (const std::exception& e) {
      auto* k = dynamic_cast<const Error*>(&e);
      SetError(k ? "[" + k->code() + "] " + k->what() : std::string("[INTERNAL] ") + e.what());
    }
    if (has_progress) progress.Release();
  }
  void OnOK() override {
    deferred_.Resolve(EngineWrap::Wrap(Env(), std::move(ex_), header, meta, bytes));
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Executor> ex_;
};

// build(plan: Uint8Array, options: {backend, timing, meta, buildOptions}, progress?, cancel?: Int32Array)
Napi::Value Build(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  REQUIRE_ARG(info.Length() >= 2 && info[1].IsObject(), "build(plan, options, progress?, cancel?)");
  auto* w = new BuildWorker(env);
  try {
    w->bytes = std::make_shared<const std::vector<uint8_t>>(bytes_arg(info[0], "plan"));
    Napi::Object o = info[1].As<Napi::Object>();
    w->opts.backend = o.Has("backend") ? o.Get("backend").ToString().Utf8Value() : "cpu";
    Backend* be = find_backend(w->opts.backend);
    if (!be) throw Napi::Error::New(env, "[UNSUPPORTED] device '" + w->opts.backend + "': this kiln addon has no such backend");
    w->opts.time_tactics = !o.Has("timing") || o.Get("timing").ToBoolean().Value();
    w->opts.strict = o.Has("strict") && o.Get("strict").ToBoolean().Value();
    if (o.Has("deviceId") && o.Get("deviceId").IsNumber()) w->opts.device_id = o.Get("deviceId").ToNumber().Int32Value();
    if (o.Has("tactics") && o.Get("tactics").IsObject()) {
      Napi::Object ov = o.Get("tactics").As<Napi::Object>();
      Napi::Array keys = ov.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        std::string k = keys.Get(i).ToString().Utf8Value();
        w->opts.force.emplace_back(k, ov.Get(k).ToString().Utf8Value());
      }
    }
    try {
      be->use_device(w->opts.device_id);  // the header names the engine's device
    } catch (const std::exception& e) {
      throw to_js(env, e);
    }
    w->meta = o.Has("meta") ? o.Get("meta").ToString().Utf8Value() : "";
    if (o.Has("timingCache") && o.Get("timingCache").IsObject()) {
      Napi::Object c = o.Get("timingCache").As<Napi::Object>();
      Napi::Array keys = c.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        std::string k = keys.Get(i).ToString().Utf8Value();
        Napi::Value v = c.Get(k);
        if (v.IsNumber()) w->cache[k] = v.As<Napi::Number>().DoubleValue();
      }
      w->opts.cache = &w->cache;
    }
    w->header.kiln_version = KILN_VERSION;
    w->header.backend = w->opts.backend;
    w->header.device = be->device();
    w->header.capability = be->capability();
    w->header.libraries = be->libraries();
    w->header.build_options = o.Has("buildOptions") ? o.Get("buildOptions").ToString().Utf8Value() : "{}";
    if (info.Length() >= 3 && info[2].IsFunction()) {
      w->progress = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "kiln-progress", 0, 1);
      w->has_progress = true;
    }
    if (info.Length() >= 4 && info[3].IsTypedArray()) {
      auto a = info[3].As<Napi::TypedArray>();
      if (a.TypedArrayType() != napi_int32_array || a.ElementLength() < 1)
        throw Napi::TypeError::New(env, "cancel must be an Int32Array of length >= 1");
      w->cancel_flag = reinterpret_cast<std::atomic<int>*>(static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset());
      w->cancel_ref = Napi::Persistent(info[3]);
    }
  } catch (...) {
    if (w->has_progress) w->progress.Release();
    delete w;
    throw;
  }
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// load(engineBytes: Uint8Array) -> Promise<NativeEngine>
Napi::Value Load(const Napi::CallbackInfo& info) {
  REQUIRE_ARG(info.Length() >= 1 && info[0].IsTypedArray(), "load(bytes, options?): bytes must be a Uint8Array");
  auto* w = new BuildWorker(info.Env());
  w->loading = true;
  if (info.Length() >= 2 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    if (o.Has("deviceId") && o.Get("deviceId").IsNumber()) w->opts.device_id = o.Get("deviceId").ToNumber().Int32Value();
  }
  w->bytes = std::make_shared<const std::vector<uint8_t>>(bytes_arg(info[0], "engine bytes"));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// runPlan(plan: Uint8Array, inputs: TypedArray[], overrides?: {kind: tactic}) -> ArrayBuffer[]
// Synchronous: constant folding and tactic tests. Without overrides the reference tactics run.
Napi::Value RunPlan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  REQUIRE_ARG(info.Length() >= 2 && info[1].IsArray(), "runPlan(plan, inputs, overrides?)");
  try {
    auto plan = decode_plan(std::make_shared<const std::vector<uint8_t>>(bytes_arg(info[0], "plan")), "plan");
    std::vector<std::pair<std::string, std::string>> overrides;
    if (info.Length() >= 3 && info[2].IsObject()) {
      Napi::Object ov = info[2].As<Napi::Object>();
      Napi::Array keys = ov.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        std::string k = keys.Get(i).ToString().Utf8Value();
        overrides.emplace_back(k, ov.Get(k).ToString().Utf8Value());
      }
    }
    // {"*": "fast"}: the first faster CPU tactic of each layer instead of the reference (untimed).
    bool fast = overrides.size() == 1 && overrides[0].first == "*" && overrides[0].second == "fast";
    std::unique_ptr<Executor> ex;
    if (fast) {
      BuildOptions o;
      o.time_tactics = false;
      o.prefer_fast = true;
      ex = Executor::build(plan, o);
    } else {
      ex = Executor::reference(plan, overrides);
    }
    auto ins = gather_inputs(info[1].As<Napi::Array>(), *plan, nullptr);
    Napi::Array outs = Napi::Array::New(env, plan->outputs.size());
    std::vector<void*> out_ptrs;
    for (size_t i = 0; i < plan->outputs.size(); ++i) {
      Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, std::max<size_t>(plan->tensors[plan->outputs[i]].nbytes(), 1));
      out_ptrs.push_back(ab.Data());
      outs.Set(static_cast<uint32_t>(i), ab);
    }
    ex->run(ins, out_ptrs);
    return outs;
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw to_js(env, e);
  }
}

Napi::Value PlanToJson(const Napi::CallbackInfo& info) {
  REQUIRE_ARG(info.Length() >= 1, "planToJson(plan)");
  try {
    auto plan = decode_plan(std::make_shared<const std::vector<uint8_t>>(bytes_arg(info[0], "plan")), "plan");
    return Napi::String::New(info.Env(), plan_to_json(*plan));
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw to_js(info.Env(), e);
  }
}

// tactics(backend?) -> { kind: [tactic names, reference first] }
Napi::Value Tactics(const Napi::CallbackInfo& info) {
  std::string backend = info.Length() >= 1 && info[0].IsString() ? info[0].ToString().Utf8Value() : "cpu";
  Napi::Object o = Napi::Object::New(info.Env());
  for (const auto& k : registered_kinds(backend)) {
    const auto& ts = tactics_for(backend, k);
    Napi::Array a = Napi::Array::New(info.Env(), ts.size());
    for (size_t i = 0; i < ts.size(); ++i) a.Set(static_cast<uint32_t>(i), ts[i]->name());
    o.Set(k, a);
  }
  return o;
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", KILN_VERSION);
  auto names = backend_names();
  Napi::Array b = Napi::Array::New(env, names.size());
  Napi::Object devices = Napi::Object::New(env);
  for (size_t i = 0; i < names.size(); ++i) {
    b.Set(static_cast<uint32_t>(i), names[i]);
    Backend* be = find_backend(names[i]);
    Napi::Object d = Napi::Object::New(env);
    d.Set("device", be->device());
    d.Set("capability", be->capability());
    d.Set("libraries", be->libraries());
    devices.Set(names[i], d);
  }
  o.Set("backends", b);
  o.Set("devices", devices);
  o.Set("device", find_backend("cpu")->device());
  o.Set("capability", find_backend("cpu")->capability());
  o.Set("threads", ThreadPool::instance().size());
  o.Set("engineFormatVersion", kEngineFormatVersion);
  o.Set("planVersion", kPlanVersion);
  return o;
}

// deviceMemory(backend, deviceId?): { free, total } bytes of that device (0 for the CPU backend).
Napi::Value DeviceMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  REQUIRE_ARG(info.Length() >= 1 && info[0].IsString(), "deviceMemory(backend, deviceId?)");
  try {
    std::string name = info[0].ToString().Utf8Value();
    Backend* b = find_backend(name);
    if (!b) fail("UNSUPPORTED", "this kiln addon has no '" + name + "' backend");
    Backend& be = *b;
    be.use_device(info.Length() >= 2 && info[1].IsNumber() ? info[1].ToNumber().Int32Value() : 0);
    auto [free, total] = be.memory();
    Napi::Object o = Napi::Object::New(env);
    o.Set("free", static_cast<double>(free));
    o.Set("total", static_cast<double>(total));
    return o;
  } catch (const std::exception& e) {
    throw to_js(env, e);
  }
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function engine = EngineWrap::Init(env);
  env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(engine)));
  exports.Set("build", Napi::Function::New(env, Build));
  exports.Set("load", Napi::Function::New(env, Load));
  exports.Set("runPlan", Napi::Function::New(env, RunPlan));
  exports.Set("planToJson", Napi::Function::New(env, PlanToJson));
  exports.Set("tactics", Napi::Function::New(env, Tactics));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("deviceMemory", Napi::Function::New(env, DeviceMemory));
  // Node's environment teardown: the backends release what outlives engines (CUDA library handles).
  napi_add_env_cleanup_hook(
      env,
      [](void*) {
        for (const std::string& n : backend_names()) find_backend(n)->shutdown();
      },
      nullptr);
  return exports;
}

}  // namespace kiln

static Napi::Object InitKiln(Napi::Env env, Napi::Object exports) { return kiln::Init(env, exports); }
NODE_API_MODULE(kiln, InitKiln)
