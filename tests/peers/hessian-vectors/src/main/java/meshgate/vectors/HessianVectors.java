package meshgate.vectors;

import com.alibaba.com.caucho.hessian.io.Hessian2Input;
import com.alibaba.com.caucho.hessian.io.Hessian2Output;

import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.Serializable;
import java.lang.reflect.Array;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Date;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/**
 * Hessian 2.0 vectors written and read by hessian-lite, the serializer of Apache Dubbo.
 *
 * <p>{@code write}: one JSON line per named value, {"name", "hex", "description"}.
 * {@code check}: reads "name TAB hex" lines, decodes each hex with hessian-lite and prints
 * {"name", "equal", "expected", "actual"} comparing canonical descriptions. A name starting
 * with "stream:" is several top-level values written to one stream, as in a Dubbo body.
 */
public final class HessianVectors {

    /** The POJO of the object vectors. */
    public static final class Pojo implements Serializable {
        private static final long serialVersionUID = 1L;
        String name;
        int age;
        long score;
        List<String> tags;
        Pojo next;

        public Pojo() {
        }

        Pojo(String name, int age, long score, List<String> tags, Pojo next) {
            this.name = name;
            this.age = age;
            this.score = score;
            this.tags = tags;
            this.next = next;
        }
    }

    private HessianVectors() {
    }

    static Map<String, Object> vectors() {
        Map<String, Object> v = new LinkedHashMap<>();
        v.put("null", null);
        v.put("true", Boolean.TRUE);
        v.put("false", Boolean.FALSE);
        int[] ints = {0, 1, -1, -16, 47, -17, 48, -2048, 2047, -2049, 2048,
            -262144, 262143, -262145, 262144, Integer.MIN_VALUE, Integer.MAX_VALUE};
        for (int i : ints) {
            v.put("int:" + i, i);
        }
        long[] longs = {0, -8, 15, -9, 16, -2048, 2047, -2049, 2048, -262144, 262143,
            -262145, 262144, Integer.MIN_VALUE, Integer.MAX_VALUE, Integer.MIN_VALUE - 1L,
            Integer.MAX_VALUE + 1L, Long.MIN_VALUE, Long.MAX_VALUE};
        for (long l : longs) {
            v.put("long:" + l, l);
        }
        double[] doubles = {0.0, 1.0, -1.0, 127.0, -128.0, 128.0, -129.0, 32767.0, -32768.0,
            32768.0, 0.5, -2.5, 12.25, 0.001, 0.1, 2147483.647, 2147483.648, -2147483.648,
            3.141592653589793, 1e300, 1e-300, Double.NaN, Double.POSITIVE_INFINITY,
            Double.NEGATIVE_INFINITY};
        for (double d : doubles) {
            v.put("double:" + d, d);
        }
        v.put("string:empty", "");
        v.put("string:a", "a");
        v.put("string:31", "a".repeat(31));
        v.put("string:32", "a".repeat(32));
        v.put("string:1023", "b".repeat(1023));
        v.put("string:1024", "b".repeat(1024));
        v.put("string:32768", "c".repeat(32768));
        v.put("string:32769", "c".repeat(32769));
        v.put("string:70000", "d".repeat(70000));
        v.put("string:latin", "h\u00e9llo w\u00f6rld");
        v.put("string:cjk", "\u4e2d\u6587\u5b57\u7b26");
        v.put("string:emoji", "\ud83d\ude00");
        v.put("string:mixed", "a\ud83d\ude00b\u00e9\u4e2d");
        v.put("string:emoji-chunk-boundary", "a" + "\ud83d\ude00".repeat(20000));
        v.put("string:nul", "\u0000x\u0000");
        v.put("string:lone-surrogate", "x\ud800y");
        v.put("binary:0", bytes(0));
        v.put("binary:1", bytes(1));
        v.put("binary:15", bytes(15));
        v.put("binary:16", bytes(16));
        v.put("binary:1023", bytes(1023));
        v.put("binary:1024", bytes(1024));
        v.put("binary:70000", bytes(70000));
        v.put("date:0", new Date(0L));
        v.put("date:1699999980000", new Date(1699999980000L));
        v.put("date:1700000000000", new Date(1700000000000L));
        v.put("date:-60000", new Date(-60000L));
        v.put("date:-1", new Date(-1L));
        v.put("date:1234567890123", new Date(1234567890123L));
        v.put("list:empty", new ArrayList<>());
        v.put("list:mixed", new ArrayList<>(Arrays.asList(1, "two", 3.5, null, true)));
        v.put("list:7", new ArrayList<>(Arrays.asList(1, 2, 3, 4, 5, 6, 7)));
        v.put("list:8", new ArrayList<>(Arrays.asList(1, 2, 3, 4, 5, 6, 7, 8)));
        v.put("list:nested", new ArrayList<>(Arrays.asList(
            new ArrayList<>(Arrays.asList(1, 2)), new ArrayList<>(Arrays.asList(3)))));
        v.put("list:linked", new LinkedList<>(Arrays.asList(1, 2)));
        v.put("array:int", new int[] {1, 2, 3});
        v.put("array:int-empty", new int[0]);
        v.put("array:int-10", new int[] {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
        v.put("array:long", new long[] {1L, 2L});
        v.put("array:double", new double[] {1.5, 2.0});
        v.put("array:boolean", new boolean[] {true, false});
        v.put("array:string", new String[] {"a", "b"});
        v.put("array:object", new Object[] {1, "x", null});
        v.put("array:pojo", new Pojo[] {pojo("a"), pojo("b")});
        v.put("map:empty", new HashMap<>());
        v.put("map:string", hashMap("a", 1, "b", "x"));
        v.put("map:int-keys", hashMap(1, "one", 2, "two"));
        v.put("map:nested", hashMap("list", new ArrayList<>(Arrays.asList(1, 2)),
            "map", hashMap("k", "v")));
        TreeMap<String, String> tree = new TreeMap<>();
        tree.put("k", "v");
        v.put("map:tree", tree);
        v.put("object:pojo", new Pojo("alice", 30, 5L,
            new ArrayList<>(Arrays.asList("x", "y")), null));
        v.put("object:pojo-list", new ArrayList<>(Arrays.asList(pojo("a"), pojo("b"))));
        v.put("object:pojo-nested", new Pojo("outer", 1, 2L, null, pojo("inner")));
        Map<String, Object> shared = hashMap("k", 1);
        v.put("ref:shared", new ArrayList<>(Arrays.asList(shared, shared)));
        Pojo cycle = new Pojo("self", 0, 0L, null, null);
        cycle.next = cycle;
        v.put("ref:cycle", cycle);
        v.put("object:enum", TimeUnit.SECONDS);
        v.put("object:bigdecimal", new BigDecimal("12.34"));
        v.put("exception", new IllegalStateException("boom"));
        v.put("stream:pojo-twice", new Object[] {pojo("a"), pojo("b")});
        v.put("stream:dubbo-response", new Object[] {4, "hello", hashMap("dubbo", "2.0.2")});
        String greeter = "org.apache.dubbo.samples.Greeter";
        v.put("stream:dubbo-generic-request", new Object[] {"2.0.2", greeter, "1.0.0", "$invoke",
            "Ljava/lang/String;[Ljava/lang/String;[Ljava/lang/Object;", "sayHello",
            new String[] {"java.lang.String"}, new Object[] {"world"},
            hashMap("path", greeter, "interface", greeter, "version", "1.0.0", "generic", "true")});
        return v;
    }

    private static Pojo pojo(String name) {
        return new Pojo(name, name.length(), 0L, null, null);
    }

    private static byte[] bytes(int length) {
        byte[] data = new byte[length];
        for (int i = 0; i < length; i++) {
            data[i] = (byte) (i % 251);
        }
        return data;
    }

    private static Map<Object, Object> hashMapOf(Object... pairs) {
        Map<Object, Object> map = new HashMap<>();
        for (int i = 0; i < pairs.length; i += 2) {
            map.put(pairs[i], pairs[i + 1]);
        }
        return map;
    }

    @SuppressWarnings("unchecked")
    private static <K, V> Map<K, V> hashMap(Object... pairs) {
        return (Map<K, V>) (Map<?, ?>) hashMapOf(pairs);
    }

    static byte[] encode(String name, Object value) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        Hessian2Output out = new Hessian2Output(bytes);
        if (name.startsWith("stream:")) {
            for (Object item : (Object[]) value) {
                out.writeObject(item);
            }
        } else {
            out.writeObject(value);
        }
        out.flush();
        return bytes.toByteArray();
    }

    static Object decode(String name, byte[] data) throws IOException {
        Hessian2Input in = new Hessian2Input(new ByteArrayInputStream(data));
        if (name.startsWith("stream:")) {
            int count = ((Object[]) vectors().get(name)).length;
            Object[] values = new Object[count];
            for (int i = 0; i < count; i++) {
                values[i] = in.readObject();
            }
            return values;
        }
        return in.readObject();
    }

    // -- canonical descriptions: equal descriptions mean equal values, shared identities and all

    static String describe(Object value) {
        StringBuilder out = new StringBuilder();
        describe(value, new IdentityHashMap<>(), out);
        return out.toString();
    }

    private static void describe(Object v, IdentityHashMap<Object, Integer> seen, StringBuilder out) {
        if (v == null) {
            out.append("null");
        } else if (v instanceof Boolean || v instanceof Integer) {
            out.append(v.getClass().getSimpleName()).append(':').append(v);
        } else if (v instanceof Long) {
            out.append("Long:").append(v);
        } else if (v instanceof Double) {
            out.append("Double:").append(Long.toHexString(Double.doubleToRawLongBits((Double) v)));
        } else if (v instanceof String) {
            out.append("String:").append(jsonString((String) v));
        } else if (v instanceof byte[]) {
            out.append("bytes:").append(hex((byte[]) v));
        } else if (v instanceof Date) {
            out.append("Date:").append(((Date) v).getTime());
        } else if (v instanceof Enum) {
            out.append("enum<").append(((Enum<?>) v).getDeclaringClass().getName()).append(">:")
                .append(((Enum<?>) v).name());
        } else if (v instanceof BigDecimal) {
            out.append("BigDecimal:").append(v);
        } else if (v instanceof Throwable) {
            out.append("throwable<").append(v.getClass().getName()).append(">:")
                .append(((Throwable) v).getMessage());
        } else if (seen.containsKey(v)) {
            out.append("ref:").append(seen.get(v));
        } else {
            seen.put(v, seen.size());
            describeContainer(v, seen, out);
        }
    }

    private static void describeContainer(Object v, IdentityHashMap<Object, Integer> seen,
                                          StringBuilder out) {
        if (v.getClass().isArray()) {
            out.append("array<").append(v.getClass().getComponentType().getName()).append(">[");
            for (int i = 0; i < Array.getLength(v); i++) {
                out.append(i == 0 ? "" : ",");
                describe(Array.get(v, i), seen, out);
            }
            out.append(']');
        } else if (v instanceof Collection) {
            out.append("list<").append(v.getClass().getName()).append(">[");
            boolean first = true;
            for (Object item : (Collection<?>) v) {
                out.append(first ? "" : ",");
                first = false;
                describe(item, seen, out);
            }
            out.append(']');
        } else if (v instanceof Map) {
            out.append("map<").append(v.getClass().getName()).append(">{");
            TreeMap<String, String> sorted = new TreeMap<>();
            for (Map.Entry<?, ?> entry : ((Map<?, ?>) v).entrySet()) {
                sorted.put(describe(entry.getKey()), describe(entry.getValue(), seen));
            }
            boolean first = true;
            for (Map.Entry<String, String> entry : sorted.entrySet()) {
                out.append(first ? "" : ",").append(entry.getKey()).append('=')
                    .append(entry.getValue());
                first = false;
            }
            out.append('}');
        } else {
            out.append("object<").append(v.getClass().getName()).append(">{");
            boolean first = true;
            for (Field field : fields(v.getClass())) {
                out.append(first ? "" : ",").append(field.getName()).append('=');
                first = false;
                try {
                    field.setAccessible(true);
                    describe(field.get(v), seen, out);
                } catch (IllegalAccessException e) {
                    throw new IllegalStateException(e);
                }
            }
            out.append('}');
        }
    }

    private static String describe(Object value, IdentityHashMap<Object, Integer> seen) {
        StringBuilder out = new StringBuilder();
        describe(value, seen, out);
        return out.toString();
    }

    private static List<Field> fields(Class<?> type) {
        List<Field> result = new ArrayList<>();
        for (Class<?> c = type; c != null && c != Object.class; c = c.getSuperclass()) {
            for (Field field : c.getDeclaredFields()) {
                int mods = field.getModifiers();
                if (!Modifier.isStatic(mods) && !Modifier.isTransient(mods)) {
                    result.add(field);
                }
            }
        }
        return result;
    }

    // -- tiny JSON and hex helpers

    static String jsonString(String s) {
        StringBuilder out = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }

    static String hex(byte[] data) {
        StringBuilder out = new StringBuilder(data.length * 2);
        for (byte b : data) {
            out.append(Character.forDigit((b >> 4) & 0xf, 16)).append(Character.forDigit(b & 0xf, 16));
        }
        return out.toString();
    }

    static byte[] unhex(String text) {
        byte[] data = new byte[text.length() / 2];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) Integer.parseInt(text.substring(2 * i, 2 * i + 2), 16);
        }
        return data;
    }

    private static void write() throws IOException {
        for (Map.Entry<String, Object> entry : vectors().entrySet()) {
            String name = entry.getKey();
            Object value = entry.getValue();
            String description = describe(value);
            System.out.println("{\"name\":" + jsonString(name) + ",\"hex\":\""
                + hex(encode(name, value)) + "\",\"description\":" + jsonString(description) + "}");
        }
    }

    private static void check() throws IOException {
        Map<String, Object> expected = vectors();
        BufferedReader lines = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = lines.readLine()) != null) {
            if (line.isEmpty()) {
                continue;
            }
            int tab = line.indexOf('\t');
            String name = line.substring(0, tab);
            String prefix = "{\"name\":" + jsonString(name) + ",";
            if (!expected.containsKey(name)) {
                System.out.println(prefix + "\"error\":\"unknown vector\"}");
                continue;
            }
            try {
                Object actual = decode(name, unhex(line.substring(tab + 1)));
                String want = describe(expected.get(name));
                String got = describe(actual);
                System.out.println(prefix + "\"equal\":" + want.equals(got) + ",\"expected\":"
                    + jsonString(want) + ",\"actual\":" + jsonString(got) + "}");
            } catch (Exception | StackOverflowError e) {
                System.out.println(prefix + "\"error\":" + jsonString(e.toString()) + "}");
            }
        }
    }

    public static void main(String[] args) throws IOException {
        String mode = args.length > 0 ? args[0] : "write";
        if (mode.equals("write")) {
            write();
        } else if (mode.equals("check")) {
            check();
        } else {
            System.err.println("usage: HessianVectors write|check");
            System.exit(2);
        }
        System.out.flush();
    }
}
