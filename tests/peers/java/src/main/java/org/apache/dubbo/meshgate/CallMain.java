package org.apache.dubbo.meshgate;

import java.io.PrintStream;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.dubbo.common.stream.StreamObserver;
import org.apache.dubbo.config.ApplicationConfig;
import org.apache.dubbo.config.ReferenceConfig;
import org.apache.dubbo.config.RegistryConfig;
import org.apache.dubbo.config.bootstrap.DubboBootstrap;
import org.apache.dubbo.rpc.RpcException;
import org.apache.dubbo.rpc.StatusRpcException;
import org.apache.dubbo.rpc.TriRpcStatus;
import meshgate.interop.v1.Greeter;
import meshgate.interop.v1.HelloReply;
import meshgate.interop.v1.HelloRequest;
import meshgate.interop.v1.SlowRequest;

/**
 * The peer's client mode ({@code --call HOST:PORT}): a Triple consumer of the IDL Greeter with a
 * direct URL (no registry, no metadata report, no QoS) that makes one call, or one stream, and
 * prints each reply as a JSON line {@code {"message": ..., "served_by": ...}} on stdout, or the
 * gRPC status it saw as {@code {"error": {"code": N, "message": ...}}}. Exits 0 once printed.
 */
final class CallMain {
    /** The JSON lines go to the real stdout; everything else Dubbo prints goes to stderr. */
    private static final PrintStream REPLIES = System.out;

    private CallMain() {
    }

    static void run(String[] args) {
        System.setOut(System.err);
        // Dubbo swaps a loopback provider host for the machine's own address when it connects
        // (NetUtils.filterLocalHost), and servers bound to 127.0.0.1 only (the Go peer, meshgate)
        // refuse that. With every interface ignored, the "own address" is 127.0.0.1 again.
        if (System.getProperty("dubbo.network.interface.ignored") == null) {
            System.setProperty("dubbo.network.interface.ignored", ".*");
        }
        String address = stringArg(args, "--call", null);
        String group = stringArg(args, "--group", null);
        String version = stringArg(args, "--version", null);
        String method = stringArg(args, "--method", "SayHello");
        String name = stringArg(args, "--name", "meshgate");
        int millis = Integer.parseInt(stringArg(args, "--millis", "0"));
        int timeoutMillis = Integer.parseInt(stringArg(args, "--timeout-ms", "10000"));

        ApplicationConfig application = new ApplicationConfig("meshgate-java-client");
        application.setQosEnable(false);
        ReferenceConfig<Greeter> reference = new ReferenceConfig<>();
        reference.setInterface(Greeter.class);
        reference.setUrl("tri://" + address);
        reference.setProtocol("tri");
        reference.setGroup(group);
        reference.setVersion(version);
        reference.setTimeout(timeoutMillis);
        // One call per run: no failover retries (they would multiply through meshgate's own).
        reference.setCluster("failfast");
        reference.setRetries(0);
        reference.setCheck(false);
        DubboBootstrap.getInstance()
                .application(application)
                .registry(new RegistryConfig(RegistryConfig.NO_AVAILABLE))
                .reference(reference)
                .start();
        Greeter greeter = reference.get();

        HelloRequest hello = HelloRequest.newBuilder().setName(name).build();
        try {
            switch (method) {
                case "SayHello" -> printReply(greeter.sayHello(hello));
                case "Fail" -> printReply(greeter.fail(hello));
                case "Slow" -> printReply(greeter.slow(SlowRequest.newBuilder().setMillis(millis).build()));
                case "SayHelloStream" -> stream(greeter, hello, timeoutMillis);
                default -> {
                    System.err.println("unknown --method " + method);
                    halt(2);
                }
            }
        } catch (Throwable error) {
            printError(error);
        }
        halt(0);
    }

    private static void stream(Greeter greeter, HelloRequest hello, int timeoutMillis)
            throws InterruptedException {
        CountDownLatch done = new CountDownLatch(1);
        greeter.sayHelloStream(hello, new StreamObserver<>() {
            @Override
            public void onNext(HelloReply reply) {
                printReply(reply);
            }

            @Override
            public void onError(Throwable error) {
                printError(error);
                done.countDown();
            }

            @Override
            public void onCompleted() {
                done.countDown();
            }
        });
        // The deadline bounds the stream on the wire; the slack only guards against a hang here.
        if (!done.await(timeoutMillis + 10_000L, TimeUnit.MILLISECONDS)) {
            printError(TriRpcStatus.DEADLINE_EXCEEDED.withDescription("stream did not finish")
                    .asException());
        }
    }

    private static synchronized void printReply(HelloReply reply) {
        REPLIES.println("{\"message\": " + quote(reply.getMessage()) + ", \"served_by\": "
                + quote(reply.getServedBy()) + "}");
        REPLIES.flush();
    }

    /** The Triple status behind the exception (a timeout is DEADLINE_EXCEEDED, as in gRPC). */
    private static synchronized void printError(Throwable error) {
        TriRpcStatus status = statusOf(error);
        String message = status.description != null ? status.description : String.valueOf(error);
        REPLIES.println("{\"error\": {\"code\": " + status.code.code + ", \"message\": "
                + quote(message) + "}}");
        REPLIES.flush();
    }

    /**
     * The status the server (or the client's own deadline) set. Dubbo wraps the StatusRpcException
     * of a failed call in an RpcException ("Failed to invoke the method ..."); the status inside
     * is what went over the wire.
     */
    private static TriRpcStatus statusOf(Throwable error) {
        for (Throwable cause = error; cause != null; cause = cause.getCause()) {
            if (cause instanceof StatusRpcException statusError) {
                return statusError.getStatus();
            }
            if (cause instanceof RpcException rpcError && rpcError.isTimeout()) {
                return TriRpcStatus.DEADLINE_EXCEEDED.withDescription(rpcError.getMessage());
            }
            if (cause.getCause() == cause) {
                break;
            }
        }
        Throwable cause = error;
        while ((cause instanceof ExecutionException || cause instanceof CompletionException)
                && cause.getCause() != null) {
            cause = cause.getCause();
        }
        return TriRpcStatus.getStatus(cause);
    }

    /** Skips Dubbo's shutdown hooks, which wait for requests this one-shot client never serves. */
    private static void halt(int status) {
        REPLIES.flush();
        System.err.flush();
        Runtime.getRuntime().halt(status);
    }

    static String quote(String text) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"').toString();
    }

    private static String stringArg(String[] args, String name, String fallback) {
        for (int i = 0; i + 1 < args.length; i++) {
            if (args[i].equals(name)) {
                return args[i + 1];
            }
        }
        if (fallback == null && name.equals("--call")) {
            throw new IllegalArgumentException("missing --call HOST:PORT");
        }
        return fallback;
    }
}
