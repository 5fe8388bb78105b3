package org.apache.dubbo.meshgate;

import org.apache.dubbo.common.stream.StreamObserver;
import meshgate.interop.v1.DubboGreeterTriple;
import meshgate.interop.v1.HelloReply;
import meshgate.interop.v1.HelloRequest;
import meshgate.interop.v1.SlowRequest;
import org.apache.dubbo.rpc.TriRpcStatus;

/** The IDL Greeter; `servedBy` ("java g1/1.0.0") tells callers which provider answered. */
public class GreeterImpl extends DubboGreeterTriple.GreeterImplBase {
    private final String servedBy;

    public GreeterImpl(String group, String version) {
        this.servedBy = "java " + group + "/" + version;
    }

    private HelloReply reply(String message) {
        return HelloReply.newBuilder().setMessage(message).setServedBy(servedBy).build();
    }

    @Override
    public HelloReply sayHello(HelloRequest request) {
        return reply("hello " + request.getName());
    }

    @Override
    public HelloReply fail(HelloRequest request) {
        throw TriRpcStatus.fromCode(TriRpcStatus.Code.FAILED_PRECONDITION)
                .withDescription("greeter business failure for " + request.getName())
                .asException();
    }

    @Override
    public HelloReply slow(SlowRequest request) {
        PeerMain.sleep(request.getMillis());
        return reply("slept " + request.getMillis() + "ms");
    }

    @Override
    public void sayHelloStream(HelloRequest request, StreamObserver<HelloReply> responses) {
        for (int i = 1; i <= 3; i++) {
            responses.onNext(reply("hello " + request.getName() + " #" + i));
        }
        responses.onCompleted();
    }
}
