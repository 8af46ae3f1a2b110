# A first look at a real container (lesson 08 replaces this demo later).
help run
explain on
run --rm busybox sh -c 'echo "hello from $(hostname), I am PID $$"; ls /'
explain off
run -d --name demo busybox sleep 300
ps
ns ls host demo
inspect --format '{{.State.Pid}}' demo
ns join demo --ns net,uts -- sh -c 'hostname; ip addr'
exec demo ps
rm -f demo
