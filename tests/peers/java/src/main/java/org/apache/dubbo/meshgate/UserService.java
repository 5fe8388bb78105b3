package org.apache.dubbo.meshgate;

import java.util.List;

/** The POJO (non-IDL) interface of the contract, served over dubbo2/hessian2 and Triple. */
public interface UserService {
    String echo(String text);

    int add(int a, int b);

    User getUser(long id);

    User createUser(User user);

    String greet(String name);

    String greet(String name, int times);

    List<User> listUsers(List<Long> ids);

    void fail(String message) throws UserServiceException;

    String slow(int millis);
}
